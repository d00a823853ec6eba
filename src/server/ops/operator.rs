//! The scheduler configuration (Nomad's Operator.SchedulerGetConfiguration and
//! Operator.SchedulerSetConfiguration).

use crate::server::state::{Applied, Command, Request};
use crate::server::{Server, ServerError};
use crate::structs::SchedulerConfiguration;

impl Server {
    /// Writes `default` as the scheduler configuration when none is stored yet (a new
    /// cluster), so that it has real indexes and check-and-set works from the start.
    pub async fn ensure_scheduler_config(
        &self,
        default: SchedulerConfiguration,
    ) -> Result<(), ServerError> {
        if self.state.snapshot().scheduler_config.is_some() {
            return Ok(());
        }
        self.state
            .commit(Request::new(Command::SchedulerConfigEnsure {
                config: default,
            }))
            .await
            .map_err(ServerError::State)?;
        Ok(())
    }

    /// Replaces the scheduler configuration; with `cas`, only when the stored one's
    /// ModifyIndex is `cas`. Returns whether it was written and the index.
    pub async fn set_scheduler_config(
        &self,
        mut config: SchedulerConfiguration,
        cas: Option<u64>,
    ) -> Result<(bool, u64), ServerError> {
        config.validate().map_err(ServerError::BadRequest)?;
        if config.scheduler_algorithm.is_empty() {
            config.scheduler_algorithm =
                crate::structs::operator::SCHEDULER_ALGORITHM_BINPACK.into();
        }
        let (index, applied) = self
            .state
            .commit(Request::new(Command::SchedulerConfigSet { config, cas }))
            .await
            .map_err(ServerError::State)?;
        match applied {
            Applied::Written(updated) => Ok((updated, index)),
            other => Err(other.unexpected().into()),
        }
    }
}
