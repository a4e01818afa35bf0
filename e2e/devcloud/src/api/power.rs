//! Carrying out a power action on an emulated machine, once the Hetzner or
//! the Scaleway API has recorded the state change.

use super::AppState;
use crate::state::{Milestone, ServerStatus};
use crate::vm::BootKind;

/// What a power action does to the machine, decided under the store lock.
#[derive(Clone, Copy)]
pub(crate) enum Power {
    /// The record alone changes (the machine is already where it should be,
    /// or another action is taking it there).
    Nothing,
    Boot,
    /// Ends the processes, then records the server as off.
    Halt,
    Reboot,
    /// Ends the processes of a server already removed from the world.
    Terminate,
}

/// Carries out `power` on machine `id`. Halting runs in the background, so
/// the API answers at once.
pub(crate) fn apply(state: &AppState, id: u64, power: Power) {
    let fleet = state.fleet.clone();
    let store = state.store.clone();
    match power {
        Power::Nothing => {}
        Power::Boot => fleet.boot(id, BootKind::PowerOn),
        Power::Halt => {
            tokio::spawn(async move {
                fleet.halt(id).await;
                fleet.console_line(id, "powered off");
                store.update(|w| {
                    if w.servers
                        .get(&id)
                        .is_some_and(|s| s.status == ServerStatus::Stopping)
                    {
                        w.set_status(id, ServerStatus::Off);
                    }
                    w.reach(id, Milestone::Off);
                });
            });
        }
        Power::Reboot => {
            tokio::spawn(async move {
                fleet.halt(id).await;
                fleet.console_line(id, "rebooting");
                fleet.boot(id, BootKind::PowerOn);
            });
        }
        Power::Terminate => {
            tokio::spawn(async move {
                fleet.halt(id).await;
                fleet.console_line(id, "server terminated");
            });
        }
    }
}
