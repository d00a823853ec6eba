//! Allocation writes: `Alloc.Stop` (stop and reschedule one allocation).

use crate::server::events::EventType;
use crate::server::{Server, ServerError};
use crate::structs::{DesiredTransition, trigger};

/// `Alloc.Stop`'s answer: the evaluation that places the replacement.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocStopResponse {
    /// The evaluation created for the allocation's job.
    #[serde(rename = "EvalID")]
    pub eval_id: String,
    /// The index of the write.
    pub index: u64,
}

impl Server {
    /// Stops allocation `alloc_id` and has it rescheduled, as Nomad does: the allocation is
    /// marked for migration and an `alloc-stop` evaluation lets the scheduler stop it and
    /// place a replacement linked through PreviousAllocation/NextAllocation.
    pub async fn stop_alloc(
        &self,
        alloc_id: &str,
        no_shutdown_delay: bool,
    ) -> Result<AllocStopResponse, ServerError> {
        let (index, eval) = self
            .state
            .write(|txn| {
                txn.set_event_type(EventType::AllocationUpdateDesiredStatus);
                let Some(alloc) = txn.tables().alloc(alloc_id) else {
                    return Err(crate::server::state::StateError::NotFound(format!(
                        "Unknown allocation \"{alloc_id}\""
                    )));
                };
                let mut alloc = (*alloc).clone();
                let (job_type, priority, job_modify_index) = alloc
                    .job
                    .as_ref()
                    .map(|j| (j.r#type.clone(), j.priority, j.job_modify_index))
                    .unwrap_or_default();
                let mut eval = Server::new_eval(
                    &alloc.namespace,
                    &alloc.job_id,
                    &job_type,
                    priority,
                    trigger::ALLOC_STOP,
                );
                eval.job_modify_index = job_modify_index;
                alloc.desired_transition = DesiredTransition {
                    migrate: Some(true),
                    no_shutdown_delay: Some(no_shutdown_delay),
                    ..alloc.desired_transition
                };
                txn.put_alloc_server(alloc)?;
                txn.put_eval(eval)
            })
            .await
            .map_err(|e| match e {
                crate::server::state::StateError::NotFound(m) => ServerError::NotFound(m),
                other => ServerError::State(other),
            })?;
        self.broker.enqueue((*eval).clone());
        Ok(AllocStopResponse {
            eval_id: eval.id.clone(),
            index,
        })
    }
}
