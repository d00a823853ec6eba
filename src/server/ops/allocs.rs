//! Allocation writes: `Alloc.Stop` (stop and reschedule one allocation).

use crate::server::state::{Applied, Command, Request};
use crate::server::{Server, ServerError};
use crate::structs::generate_uuid;

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
        let (index, applied) = self
            .state
            .commit(Request::new(Command::AllocStop {
                alloc_id: alloc_id.to_string(),
                no_shutdown_delay,
                eval_id: generate_uuid(),
            }))
            .await
            .map_err(|e| match e {
                crate::server::state::StateError::NotFound(m) => ServerError::NotFound(m),
                other => ServerError::State(other),
            })?;
        let eval = match applied {
            Applied::Eval(eval) => eval,
            other => return Err(other.unexpected().into()),
        };
        self.broker.enqueue((*eval).clone());
        Ok(AllocStopResponse {
            eval_id: eval.id.clone(),
            index,
        })
    }
}
