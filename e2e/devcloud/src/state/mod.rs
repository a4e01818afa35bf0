//! The persisted world: servers, actions and id/address counters.
//!
//! Everything a restart needs lives here and is written to `state.json`
//! after each change; the running processes themselves are runtime-only and
//! belong to [`crate::vm`].

mod ip;
mod store;

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use crate::clock::now_rfc3339;

pub(crate) use store::{Store, StoreError};

/// Hetzner's server status values that devcloud produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ServerStatus {
    Initializing,
    Starting,
    Running,
    Stopping,
    Off,
}

impl ServerStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ServerStatus::Initializing => "initializing",
            ServerStatus::Starting => "starting",
            ServerStatus::Running => "running",
            ServerStatus::Stopping => "stopping",
            ServerStatus::Off => "off",
        }
    }
}

/// When a pending action counts as finished.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Milestone {
    /// The hypervisor finished creating the machine (boot delay elapsed).
    Created,
    /// The machine reached `running` (boot finished, successfully or not).
    Running,
    /// The machine reached `off`.
    Off,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PendingAction {
    pub action_id: u64,
    pub until: Milestone,
}

/// A live process group started for a server, remembered so a devcloud that
/// died without cleaning up can kill it on the next start.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ProcessRecord {
    pub pid: i32,
    /// Field 22 of `/proc/<pid>/stat`; guards against pid reuse.
    pub start_ticks: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ServerRecord {
    pub id: u64,
    pub name: String,
    pub status: ServerStatus,
    pub created: String,
    pub server_type: String,
    pub location: String,
    pub image: String,
    pub labels: BTreeMap<String, String>,
    pub ipv4: Ipv4Addr,
    pub user_data: Option<String>,
    pub start_after_create: bool,
    /// Cloud-init runs once per instance; later boots only start enabled units.
    pub cloud_init_done: bool,
    /// Units `systemctl enable`d, started again on every later boot.
    pub enabled_units: Vec<String>,
    pub processes: Vec<ProcessRecord>,
    pub pending_actions: Vec<PendingAction>,
    /// Set for servers created through the Scaleway API; the Hetzner API
    /// never shows them (and vice versa). The fields above still drive the
    /// emulated machine: `server_type` is the commercial type, `location`
    /// the zone, `user_data` the `cloud-init` key.
    #[serde(default)]
    pub scaleway: Option<ScalewayMeta>,
}

/// What the Scaleway API knows about a server beyond the shared record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ScalewayMeta {
    pub uuid: String,
    pub zone: String,
    pub project: String,
    pub tags: Vec<String>,
    pub modified: String,
    /// The root volume, deleted with the server by `terminate` and left
    /// behind (detached) by `DELETE`.
    pub volume: ScalewayVolume,
    /// Every user-data key, `cloud-init` included.
    pub user_data: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ScalewayVolume {
    pub uuid: String,
    pub name: String,
    pub size_bytes: u64,
    pub zone: String,
    pub project: String,
    pub created: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ActionStatus {
    Running,
    Success,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ActionRecord {
    pub id: u64,
    pub command: String,
    pub status: ActionStatus,
    pub started: String,
    pub finished: Option<String>,
    pub server_id: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct World {
    pub next_server_id: u64,
    pub next_action_id: u64,
    pub next_ip_index: u32,
    pub servers: BTreeMap<u64, ServerRecord>,
    pub actions: BTreeMap<u64, ActionRecord>,
    /// Process groups of deleted servers not yet confirmed dead.
    #[serde(default)]
    pub orphans: Vec<ProcessRecord>,
    /// Scaleway volumes whose server was deleted without them, by UUID.
    #[serde(default)]
    pub scaleway_volumes: BTreeMap<String, ScalewayVolume>,
}

impl Default for World {
    fn default() -> Self {
        World {
            next_server_id: 1,
            next_action_id: 1,
            next_ip_index: 0,
            servers: BTreeMap::new(),
            actions: BTreeMap::new(),
            orphans: Vec::new(),
            scaleway_volumes: BTreeMap::new(),
        }
    }
}

impl World {
    /// A server the Hetzner API may show (not one created through Scaleway's).
    pub(crate) fn hetzner_server(&self, id: u64) -> Option<&ServerRecord> {
        self.servers.get(&id).filter(|s| s.scaleway.is_none())
    }

    pub(crate) fn hetzner_servers(&self) -> impl Iterator<Item = &ServerRecord> {
        self.servers.values().filter(|s| s.scaleway.is_none())
    }

    /// The internal id of the Scaleway server `uuid` in `zone`.
    pub(crate) fn scaleway_server_id(&self, zone: &str, uuid: &str) -> Option<u64> {
        self.servers
            .values()
            .find(|s| {
                s.scaleway
                    .as_ref()
                    .is_some_and(|m| m.zone == zone && m.uuid.eq_ignore_ascii_case(uuid))
            })
            .map(|s| s.id)
    }

    /// A fresh number for Scaleway task ids, from the action counter so it
    /// is persisted and never reused.
    pub(crate) fn allocate_task_number(&mut self) -> u64 {
        let n = self.next_action_id;
        self.next_action_id += 1;
        n
    }

    pub(crate) fn allocate_server_id(&mut self) -> u64 {
        let id = self.next_server_id;
        self.next_server_id += 1;
        id
    }

    /// A fresh loopback address; never reused, so a stale agent of a deleted
    /// server can never be mistaken for a new one.
    pub(crate) fn allocate_ipv4(&mut self) -> Ipv4Addr {
        let ip = ip::nth_address(self.next_ip_index);
        self.next_ip_index += 1;
        ip
    }

    /// Records a new action in state `running`.
    pub(crate) fn start_action(&mut self, command: &str, server_id: u64) -> ActionRecord {
        let id = self.next_action_id;
        self.next_action_id += 1;
        let action = ActionRecord {
            id,
            command: command.to_owned(),
            status: ActionStatus::Running,
            started: now_rfc3339(),
            finished: None,
            server_id,
        };
        self.actions.insert(id, action.clone());
        action
    }

    pub(crate) fn finish_action(&mut self, id: u64) {
        if let Some(action) = self.actions.get_mut(&id)
            && action.status == ActionStatus::Running
        {
            action.status = ActionStatus::Success;
            action.finished = Some(now_rfc3339());
        }
    }

    /// Starts an action that finishes when the server reaches `until`.
    pub(crate) fn start_pending_action(
        &mut self,
        command: &str,
        server_id: u64,
        until: Milestone,
    ) -> ActionRecord {
        let action = self.start_action(command, server_id);
        if let Some(server) = self.servers.get_mut(&server_id) {
            server.pending_actions.push(PendingAction {
                action_id: action.id,
                until,
            });
        }
        action
    }

    /// Marks the server as having reached `milestone`, finishing the actions
    /// that waited for it.
    pub(crate) fn reach(&mut self, server_id: u64, milestone: Milestone) {
        let Some(server) = self.servers.get_mut(&server_id) else {
            return;
        };
        // Reaching `running` implies the machine was created; reaching `off`
        // settles everything, since an interrupted start will not finish.
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut server.pending_actions)
            .into_iter()
            .partition(|p| match milestone {
                Milestone::Created => p.until == Milestone::Created,
                Milestone::Running => p.until != Milestone::Off,
                Milestone::Off => true,
            });
        server.pending_actions = waiting;
        for pending in done {
            self.finish_action(pending.action_id);
        }
    }

    pub(crate) fn set_status(&mut self, server_id: u64, status: ServerStatus) {
        if let Some(server) = self.servers.get_mut(&server_id) {
            server.status = status;
        }
    }

    /// Forgets a process record wherever it is kept.
    pub(crate) fn forget_process(&mut self, record: &ProcessRecord) {
        for server in self.servers.values_mut() {
            server.processes.retain(|p| p != record);
        }
        self.orphans.retain(|p| p != record);
    }
}
