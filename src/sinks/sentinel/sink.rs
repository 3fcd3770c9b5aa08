//! `SentinelSink`. (Skeleton: the sink's change fills it.)

use crate::sinks::sentinel::SentinelConfig;
use crate::sinks::{BuildContext, Error, Sink};

/// A sentinel sink.
pub struct SentinelSink;

impl SentinelSink {
    /// Builds the sink from its configuration.
    pub fn build(
        name: String,
        config: &SentinelConfig,
        context: &BuildContext,
    ) -> Result<Box<dyn Sink>, Error> {
        let _ = (config, context);
        Err(Error::fatal(&name, "not built yet".into()))
    }
}
