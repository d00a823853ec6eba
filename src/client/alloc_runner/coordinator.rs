//! The lifecycle coordinator: opens each stage's gate (prestart, main, poststart, poststop)
//! as the earlier stages reach the states Nomad requires.

use std::collections::HashMap;

use tokio::sync::watch;

use crate::structs::{TaskState, TaskStateName};

use super::super::task_runner::Stage;

/// Coordinator states, in the order the allocation moves through them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Nothing may start yet.
    Init,
    /// Prestart tasks run.
    Prestart,
    /// Main tasks (and prestart sidecars) run.
    Main,
    /// Poststart tasks join.
    Poststart,
    /// Poststart ephemeral tasks are done; waiting for the rest to die.
    WaitAlloc,
    /// Everything else is dead; poststop tasks run.
    Poststop,
}

const ALL_STAGES: [Stage; 6] = [
    Stage::PrestartEphemeral,
    Stage::PrestartSidecar,
    Stage::Main,
    Stage::PoststartEphemeral,
    Stage::PoststartSidecar,
    Stage::Poststop,
];

impl Phase {
    fn open(self, stage: Stage) -> bool {
        use Stage::*;
        match self {
            Phase::Init => false,
            Phase::Prestart => matches!(stage, PrestartEphemeral | PrestartSidecar),
            Phase::Main => matches!(stage, PrestartSidecar | Main),
            Phase::Poststart => !matches!(stage, PrestartEphemeral | Poststop),
            Phase::WaitAlloc => matches!(stage, PrestartSidecar | Main | PoststartSidecar),
            Phase::Poststop => stage == Poststop,
        }
    }
}

/// Gates per stage and the phase that decides them.
#[derive(Debug)]
pub struct Coordinator {
    phase: Phase,
    gates: HashMap<Stage, watch::Sender<bool>>,
}

impl Default for Coordinator {
    fn default() -> Self {
        Self::new()
    }
}

impl Coordinator {
    /// All gates closed.
    pub fn new() -> Self {
        Coordinator {
            phase: Phase::Init,
            gates: ALL_STAGES
                .iter()
                .map(|s| (*s, watch::Sender::new(false)))
                .collect(),
        }
    }

    /// All gates closed, in phase `prestart`: a restored allocation's tasks are not all
    /// pending, so it advances from their restored states instead (as Nomad's `Restore`).
    pub fn restored() -> Self {
        Coordinator {
            phase: Phase::Prestart,
            ..Self::new()
        }
    }

    /// The current phase.
    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// A receiver that is `true` while tasks of `stage` may start.
    pub fn gate(&self, stage: Stage) -> watch::Receiver<bool> {
        match self.gates.get(&stage) {
            Some(tx) => tx.subscribe(),
            None => watch::Sender::new(false).subscribe(),
        }
    }

    /// Back to `Init` with every gate closed (a restart of all tasks); `update` reopens them
    /// stage by stage once the restarted tasks are pending again.
    pub fn reset(&mut self) {
        self.phase = Phase::Init;
        for tx in self.gates.values() {
            tx.send_if_modified(|v| std::mem::replace(v, false));
        }
    }

    /// Advances the phase as far as the task states allow and sets the gates.
    pub fn update(&mut self, tasks: &[(Stage, TaskState)]) {
        loop {
            let next = self.next_phase(tasks);
            if next == self.phase {
                break;
            }
            self.phase = next;
        }
        for (stage, tx) in &self.gates {
            let open = self.phase.open(*stage);
            tx.send_if_modified(|v| {
                let changed = *v != open;
                *v = open;
                changed
            });
        }
    }

    fn next_phase(&self, tasks: &[(Stage, TaskState)]) -> Phase {
        let all = |pred: &dyn Fn(Stage, &TaskState) -> bool| {
            tasks.iter().all(|(stage, st)| pred(*stage, st))
        };
        if self.phase != Phase::Poststop
            && all(&|stage, st| stage == Stage::Poststop || st.state == TaskStateName::Dead)
            && self.phase != Phase::Init
        {
            return Phase::Poststop;
        }
        match self.phase {
            Phase::Init if all(&|_, st| st.state == TaskStateName::Pending) => Phase::Prestart,
            Phase::Prestart
                if all(&|stage, st| match stage {
                    Stage::PrestartEphemeral => st.state == TaskStateName::Dead && !st.failed,
                    Stage::PrestartSidecar => st.state == TaskStateName::Running,
                    _ => true,
                }) =>
            {
                Phase::Main
            }
            Phase::Main
                if all(&|stage, st| stage != Stage::Main || st.state != TaskStateName::Pending) =>
            {
                Phase::Poststart
            }
            Phase::Poststart
                if all(&|stage, st| {
                    stage != Stage::PoststartEphemeral || st.state == TaskStateName::Dead
                }) =>
            {
                Phase::WaitAlloc
            }
            p => p,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::structs::TaskStateName;

    fn st(state: crate::structs::TaskStateName, failed: bool) -> TaskState {
        TaskState {
            state,
            failed,
            ..Default::default()
        }
    }

    #[test]
    fn walks_the_phases() {
        let mut c = Coordinator::new();
        let main = c.gate(Stage::Main);
        let pre = c.gate(Stage::PrestartEphemeral);
        let side = c.gate(Stage::PrestartSidecar);
        let post = c.gate(Stage::PoststartEphemeral);
        let stop = c.gate(Stage::Poststop);
        let mut tasks = vec![
            (Stage::PrestartEphemeral, st(TaskStateName::Pending, false)),
            (Stage::PrestartSidecar, st(TaskStateName::Pending, false)),
            (Stage::Main, st(TaskStateName::Pending, false)),
            (Stage::PoststartEphemeral, st(TaskStateName::Pending, false)),
            (Stage::Poststop, st(TaskStateName::Pending, false)),
        ];
        c.update(&tasks);
        assert_eq!(c.phase(), Phase::Prestart);
        assert!(*pre.borrow() && *side.borrow() && !*main.borrow());

        tasks[0].1 = st(TaskStateName::Dead, false);
        c.update(&tasks);
        assert_eq!(c.phase(), Phase::Prestart, "sidecar not running yet");
        tasks[1].1 = st(TaskStateName::Running, false);
        c.update(&tasks);
        assert_eq!(c.phase(), Phase::Main);
        assert!(*main.borrow() && !*pre.borrow() && !*post.borrow());

        tasks[2].1 = st(TaskStateName::Running, false);
        c.update(&tasks);
        assert_eq!(c.phase(), Phase::Poststart);
        assert!(*post.borrow() && !*stop.borrow());

        tasks[3].1 = st(TaskStateName::Dead, false);
        c.update(&tasks);
        assert_eq!(c.phase(), Phase::WaitAlloc);

        tasks[1].1 = st(TaskStateName::Dead, false);
        tasks[2].1 = st(TaskStateName::Dead, false);
        c.update(&tasks);
        assert_eq!(c.phase(), Phase::Poststop);
        assert!(*stop.borrow() && !*main.borrow());
    }

    #[test]
    fn restored_advances_from_running_tasks() {
        let mut c = Coordinator::restored();
        let main = c.gate(Stage::Main);
        let post = c.gate(Stage::PoststartEphemeral);
        c.update(&[
            (Stage::Main, st(TaskStateName::Running, false)),
            (Stage::PoststartEphemeral, st(TaskStateName::Pending, false)),
        ]);
        assert_eq!(c.phase(), Phase::Poststart);
        assert!(*main.borrow() && *post.borrow());
    }

    #[test]
    fn failed_prestart_keeps_main_closed_and_no_prestart_skips() {
        let mut c = Coordinator::new();
        let main = c.gate(Stage::Main);
        let mut tasks = vec![
            (Stage::PrestartEphemeral, st(TaskStateName::Pending, false)),
            (Stage::Main, st(TaskStateName::Pending, false)),
        ];
        c.update(&tasks);
        tasks[0].1 = st(TaskStateName::Dead, true);
        c.update(&tasks);
        assert!(!*main.borrow());

        let mut c = Coordinator::new();
        let main = c.gate(Stage::Main);
        c.update(&[(Stage::Main, st(TaskStateName::Pending, false))]);
        assert_eq!(c.phase(), Phase::Main);
        assert!(*main.borrow());
    }
}
