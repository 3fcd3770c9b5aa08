//! `Parts`: what a walk is built from (the API client, the normalizer, the sinks), built once
//! per command from a `Loaded` configuration.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::checkpoint::{CheckpointStore, ReplayJob};
use crate::config::PollConfig;
use crate::exporter::loaded::LoadedAccount;
use crate::exporter::{Error, Loaded, ReplayOutcome, ReplayStep};
use crate::lacework::{ClientOptions, LaceworkClient};
use crate::normalize::Normalizer;
use crate::poller::{Poller, PollerParts};
use crate::service::Progress;
use crate::sinks::{BuildContext, SinkConfig, SinkSet};

/// The parts of a walk. Building them reads credential files and certificates but connects
/// nowhere.
pub(crate) struct Parts {
    /// The Lacework API client.
    pub client: LaceworkClient,
    /// Records to events.
    pub normalizer: Arc<Normalizer>,
    /// The selected sinks.
    pub sinks: Arc<SinkSet>,
    /// How windows are walked.
    poll: PollConfig,
    /// How long delivered ids are remembered.
    retention: Duration,
    /// The account events name.
    account: Option<String>,
    /// How often the user inventory is reconciled; zero: never.
    reconcile_every: Duration,
    /// What `client` reads: origin, key, sub-account, org access.
    scope: Scope,
}

/// What a client reads: origin, key, sub-account, org access.
type Scope = (String, String, Option<String>, bool);

fn scope_of(account: &LoadedAccount) -> Scope {
    (
        account.credentials.api_origin.to_string(),
        account.credentials.key_id.clone(),
        account.credentials.sub_account.clone(),
        account.lacework.org_access,
    )
}

impl Parts {
    /// Builds the parts delivering to the sinks named in `sink_names` (all when empty).
    pub(crate) async fn build(loaded: &Loaded, sink_names: &[String]) -> Result<Parts, Error> {
        Parts::build_with(loaded, sink_names, &loaded.sink_context).await
    }

    /// Builds the parts of replay `job`: an exactly-once Kafka sink gets a transactional id
    /// of its own (`<id>-replay-<job>`), so the replay never fences the daemon.
    pub(crate) async fn build_for_replay(
        loaded: &Loaded,
        sink_names: &[String],
        job: &ReplayJob,
    ) -> Result<Parts, Error> {
        let mut context = loaded.sink_context.clone();
        context.transactional_id_suffix = Some(format!("replay-{}", job.id));
        Parts::build_with(loaded, sink_names, &context).await
    }

    async fn build_with(
        loaded: &Loaded,
        sink_names: &[String],
        context: &BuildContext,
    ) -> Result<Parts, Error> {
        let config = &loaded.config;
        let selected = select_sinks(&config.sinks, sink_names)?;
        let client = LaceworkClient::new(
            &loaded.credentials,
            &ClientOptions::from_config(&config.lacework),
        )
        .map_err(Error::HttpClient)?;
        let default_account = loaded
            .credentials
            .sub_account
            .clone()
            .or_else(|| config.lacework.account.clone());
        let normalizer =
            Normalizer::new(&config.events, default_account.clone()).map_err(Error::Rules)?;
        let sinks = SinkSet::build(&selected, context)
            .await
            .map_err(Error::SinkConfig)?;
        Ok(Parts {
            client,
            normalizer: Arc::new(normalizer),
            sinks: Arc::new(sinks),
            poll: config.poll.clone(),
            retention: config.state.effective_retention(&config.poll),
            account: default_account,
            reconcile_every: config.reconcile.every,
            scope: (
                loaded.credentials.api_origin.to_string(),
                loaded.credentials.key_id.clone(),
                loaded.credentials.sub_account.clone(),
                config.lacework.org_access,
            ),
        })
    }

    /// Probes the sinks before a walk. A destination that is down is an outage like any
    /// other (deliveries wait for it); refused credentials or a missing topic will not heal by
    /// waiting.
    pub(crate) async fn check_sinks_at_start(&self) -> Result<(), Error> {
        match self.sinks.healthcheck().await {
            Ok(()) => Ok(()),
            Err(error) if error.is_retryable() => {
                tracing::warn!(
                    error = %error,
                    "A sink is unreachable at startup; deliveries will wait for it."
                );
                Ok(())
            }
            Err(error) => Err(Error::SinkHealth(error)),
        }
    }

    /// `validate --online`: exchanges the API key for a token and probes every sink, failing
    /// on any error.
    pub(crate) async fn check_online(&self) -> Result<(), Error> {
        self.client
            .check_credentials()
            .await
            .map_err(Error::ApiKey)?;
        self.sinks.healthcheck().await.map_err(Error::SinkHealth)
    }

    /// A poller over these parts, the store and the progress marks.
    pub(crate) fn poller(&self, store: CheckpointStore, progress: Progress) -> Poller {
        Poller::new(
            PollerParts {
                client: self.client.clone(),
                normalizer: Arc::clone(&self.normalizer),
                sinks: Arc::clone(&self.sinks),
                store,
                progress,
                account: self.account.clone(),
                reconcile_every: self.reconcile_every,
            },
            self.poll.clone(),
            self.retention,
        )
    }

    /// A poller of one account's live stream over these sinks: its own client (key, scope)
    /// and normalizer (the account events name).
    pub(crate) fn account_poller(
        &self,
        account: &LoadedAccount,
        events: &crate::config::EventsConfig,
        store: CheckpointStore,
        progress: Progress,
    ) -> Result<Poller, Error> {
        // The parts' own client when it reads this very scope: one token cache, one view of
        // the server's clock.
        let client = if self.scope == scope_of(account) {
            self.client.clone()
        } else {
            LaceworkClient::new(
                &account.credentials,
                &ClientOptions::from_config(&account.lacework),
            )
            .map_err(Error::HttpClient)?
        };
        let normalizer =
            Normalizer::new(events, account.default_account()).map_err(Error::Rules)?;
        Ok(Poller::new(
            PollerParts {
                client,
                normalizer: Arc::new(normalizer),
                sinks: Arc::clone(&self.sinks),
                store,
                progress,
                account: account.default_account(),
                reconcile_every: self.reconcile_every,
            },
            self.poll.clone(),
            self.retention,
        ))
    }

    /// Replays `job` from its saved position to its end, telling `on_window` after each
    /// committed window, then closes the sinks.
    pub(crate) async fn replay(
        &self,
        store: CheckpointStore,
        job: &ReplayJob,
        shutdown: &CancellationToken,
        on_window: &(dyn Fn(ReplayStep) + Send + Sync),
    ) -> Result<ReplayOutcome, Error> {
        let poller = self.poller(store, Progress::default());
        let outcome = poller.replay(job, shutdown, on_window).await;
        let closed = self.sinks.close().await;
        let outcome = outcome.map_err(Error::Replay)?;
        closed.map_err(Error::Close)?;
        Ok(outcome)
    }
}

/// The configured sinks named in `names`, in that order; all of them when `names` is empty.
fn select_sinks<'a>(
    configs: &'a [SinkConfig],
    names: &[String],
) -> Result<Vec<&'a SinkConfig>, Error> {
    if names.is_empty() {
        return Ok(configs.iter().collect());
    }
    names
        .iter()
        .map(|name| {
            configs.iter().find(|s| s.name() == name).ok_or_else(|| {
                let known: Vec<&str> = configs.iter().map(|s| s.name()).collect();
                Error::UnknownSink {
                    name: name.clone(),
                    known: known.join(", "),
                }
            })
        })
        .collect()
}
