//! `ElasticsearchSink`. (Skeleton: the sink's change fills it.)

use crate::sinks::elasticsearch::ElasticsearchConfig;
use crate::sinks::{BuildContext, Error, Sink};

/// A elasticsearch sink.
pub struct ElasticsearchSink;

impl ElasticsearchSink {
    /// Builds the sink from its configuration.
    pub fn build(
        name: String,
        config: &ElasticsearchConfig,
        context: &BuildContext,
    ) -> Result<Box<dyn Sink>, Error> {
        let _ = (config, context);
        Err(Error::fatal(&name, "not built yet".into()))
    }
}
