//! `Loaded`: a validated configuration with its secrets read, and the helpers of commands that
//! need less (the configuration alone, the live stream's key, the state database).

use std::path::{Path, PathBuf};

use crate::checkpoint::{CheckpointStore, live_stream_key};
use crate::config::{Config, ConfigError, Credentials, LaceworkConfig, Lookup};
use crate::exporter::Error;
use crate::sinks::BuildContext;

/// One account to poll, with its secrets read.
#[derive(Debug, Clone)]
pub(crate) struct LoadedAccount {
    /// Its name in logs.
    pub name: String,
    /// Its settings, inherited ones included.
    pub lacework: LaceworkConfig,
    /// Its API key and where to send it.
    pub credentials: Credentials,
}

impl LoadedAccount {
    /// The checkpoint stream of its live walk.
    pub(crate) fn live_stream(&self) -> String {
        live_stream_key(
            &self.credentials.api_origin,
            self.credentials.sub_account.as_deref(),
            self.lacework.org_access,
        )
    }

    /// The account events name when a record has none.
    pub(crate) fn default_account(&self) -> Option<String> {
        self.credentials
            .sub_account
            .clone()
            .or_else(|| self.lacework.account.clone())
    }
}

/// A validated configuration with its secrets read.
pub(crate) struct Loaded {
    /// The configuration.
    pub config: Config,
    /// The API key and where to send it (of the first account).
    pub credentials: Credentials,
    /// Every account polled (the first is `credentials`'), with its own key and settings.
    pub accounts: Vec<LoadedAccount>,
    /// What building the sinks needs from the environment.
    pub sink_context: BuildContext,
}

impl Loaded {
    /// Reads and validates the file at `path` and the secret and key files it names; logs
    /// the configuration's warnings. `credentials_directory` is systemd's
    /// `$CREDENTIALS_DIRECTORY`, as `cli` read it.
    pub(crate) fn load(
        path: &Path,
        credentials_directory: Option<&Path>,
        lookup: Lookup<'_>,
    ) -> Result<Loaded, Error> {
        let config = read_config(path, lookup)?;
        Loaded::resolve(config, credentials_directory).map_err(|source| Error::Credentials {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Reads the secret and key files an already validated configuration names.
    pub(crate) fn resolve(
        config: Config,
        credentials_directory: Option<&Path>,
    ) -> Result<Loaded, ConfigError> {
        let credentials = Credentials::resolve(&config.lacework, credentials_directory)?;
        let mut accounts = Vec::new();
        for spec in &config.accounts {
            accounts.push(LoadedAccount {
                name: spec.name.clone(),
                credentials: Credentials::resolve(&spec.lacework, credentials_directory)?,
                lacework: spec.lacework.clone(),
            });
        }
        let credentials = accounts
            .first()
            .map_or(credentials, |first| first.credentials.clone());
        let id_retention = config.state.effective_retention(&config.poll);
        Ok(Loaded {
            config,
            credentials,
            accounts,
            sink_context: BuildContext {
                credentials_directory: credentials_directory.map(PathBuf::from),
                id_retention,
                transactional_id_suffix: None,
            },
        })
    }
}

/// Reads and validates the configuration without reading secrets; logs its warnings.
/// `lookup` gives the values of `${VAR}` in the file.
pub(crate) fn read_config(path: &Path, lookup: Lookup<'_>) -> Result<Config, Error> {
    let config = Config::load(path, lookup).map_err(Error::Config)?;
    for warning in config.warnings() {
        tracing::warn!(config = %path.display(), "{warning}");
    }
    Ok(config)
}

/// The live stream's key, reading a key file only when the configuration alone cannot tell
/// (so `state` works for an operator who cannot read the secret).
pub(crate) fn live_stream_of(
    config: &Config,
    credentials_directory: Option<&Path>,
) -> Result<String, Error> {
    let lacework = &config.lacework;
    if lacework.api_key_file.is_some() {
        let credentials =
            Credentials::resolve(lacework, credentials_directory).map_err(Error::Config)?;
        return Ok(live_stream_key(
            &credentials.api_origin,
            credentials.sub_account.as_deref(),
            lacework.org_access,
        ));
    }
    let origin = lacework.api_origin(None).map_err(Error::Config)?;
    Ok(live_stream_key(
        &origin,
        lacework.sub_account.as_deref(),
        lacework.org_access,
    ))
}

/// Opens the state database the configuration names, to read it beside a running daemon.
pub(crate) async fn open_store(config: &Config) -> Result<CheckpointStore, Error> {
    CheckpointStore::open(&config.state.path)
        .await
        .map_err(Error::State)
}

/// Opens the state database to walk and write, refusing while another process does.
pub(crate) async fn open_store_exclusive(config: &Config) -> Result<CheckpointStore, Error> {
    CheckpointStore::open_exclusive(&config.state.path)
        .await
        .map_err(Error::State)
}
