//! The "hypervisor": emulated machines behind the API.
//!
//! A machine is a root directory, a console log and a set of supervised
//! service processes. Booting waits the configured delay, then interprets
//! user-data once per instance (cloud-init semantics) or, on later boots,
//! starts the units that were enabled. Halting aborts a boot in progress
//! and ends every process group; a generation number makes sure a boot
//! that was cancelled can never register a process afterwards.
//!
//! Fault injection reaches in here too: a first boot may be slowed down or
//! skip its user-data ([`crate::faults`]), and the admin API may SIGKILL,
//! stop or continue a machine's services.

mod cloud_config;
mod commands;
mod console;
mod curl;
mod net;
mod procgroup;
mod rootfs;
mod service;
mod unit;
mod words;
mod write_files;

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use nix::sys::signal::Signal;
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::faults::{Api, BootFault, Faults};
use crate::state::{Milestone, ServerStatus, Store};
use commands::{Guest, Services};
use console::Console;
use net::Http;
use rootfs::RootFs;
use service::{Host, ServiceHandle};
use unit::ServiceSpec;

/// Why a machine is being booted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BootKind {
    /// First power-on after `POST /servers`.
    Create { start: bool },
    /// Power-on of an existing machine (API, reboot, devcloud restart).
    PowerOn,
}

#[derive(Default)]
struct Machine {
    generation: u64,
    boot: Option<JoinHandle<()>>,
    services: Vec<ServiceHandle>,
}

struct Inner {
    store: Arc<Store>,
    config: Arc<Config>,
    faults: Arc<Faults>,
    http: Http,
    machines: Mutex<HashMap<u64, Machine>>,
    generations: AtomicU64,
}

/// Handle to all emulated machines; cheap to clone.
#[derive(Clone)]
pub(crate) struct Fleet {
    inner: Arc<Inner>,
}

impl Inner {
    fn machines(&self) -> MutexGuard<'_, HashMap<u64, Machine>> {
        self.machines
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn next_generation(&self) -> u64 {
        self.generations.fetch_add(1, Ordering::Relaxed) + 1
    }

    fn rootfs(&self, id: u64) -> RootFs {
        RootFs::new(self.config.server_dir(id).join("root"))
    }

    fn console(&self, id: u64) -> Console {
        Console::new(self.config.server_dir(id).join("console.log"), id)
    }
}

impl Fleet {
    pub(crate) fn new(
        store: Arc<Store>,
        config: Arc<Config>,
        faults: Arc<Faults>,
    ) -> Result<Self, reqwest::Error> {
        Ok(Fleet {
            inner: Arc::new(Inner {
                store,
                config,
                faults,
                http: Http::new()?,
                machines: Mutex::new(HashMap::new()),
                generations: AtomicU64::new(0),
            }),
        })
    }

    /// Creates the machine's disk: root skeleton and console log.
    pub(crate) fn provision(&self, id: u64) -> io::Result<()> {
        self.inner.rootfs(id).create_skeleton()?;
        self.inner.console(id).line("server created");
        Ok(())
    }

    /// Starts booting `id` in the background.
    pub(crate) fn boot(&self, id: u64, kind: BootKind) {
        let mut machines = self.inner.machines();
        let generation = self.inner.next_generation();
        let machine = machines.entry(id).or_default();
        machine.generation = generation;
        if let Some(old) = machine.boot.take() {
            old.abort();
        }
        let task = boot(Arc::clone(&self.inner), id, generation, kind);
        machine.boot = Some(tokio::spawn(task));
    }

    /// Stops everything running for `id` and waits until it is gone.
    /// Status bookkeeping is the caller's.
    pub(crate) async fn halt(&self, id: u64) {
        self.halt_with(id, false).await;
    }

    /// Like [`Fleet::halt`], but SIGKILLs the processes at once: the
    /// machine is gone, not shut down.
    pub(crate) async fn halt_hard(&self, id: u64) {
        self.halt_with(id, true).await;
    }

    async fn halt_with(&self, id: u64, hard: bool) {
        let (generation, boot, services) = {
            let mut machines = self.inner.machines();
            let Some(machine) = machines.get_mut(&id) else {
                return;
            };
            machine.generation = self.inner.next_generation();
            (
                machine.generation,
                machine.boot.take(),
                std::mem::take(&mut machine.services),
            )
        };
        if let Some(boot) = boot {
            boot.abort();
            let _ = boot.await;
        }
        let stops: Vec<_> = services
            .into_iter()
            .map(|s| {
                if hard {
                    tokio::spawn(s.kill())
                } else {
                    tokio::spawn(s.stop())
                }
            })
            .collect();
        for stop in stops {
            let _ = stop.await;
        }
        let mut machines = self.inner.machines();
        if machines.get(&id).is_some_and(|m| {
            m.generation == generation && m.boot.is_none() && m.services.is_empty()
        }) {
            machines.remove(&id);
        }
    }

    /// Halts every machine (devcloud shutdown); statuses stay as they are
    /// so the next start boots the same machines again.
    pub(crate) async fn halt_all(&self) {
        let ids: Vec<u64> = self.inner.machines().keys().copied().collect();
        let halts: Vec<_> = ids
            .into_iter()
            .map(|id| {
                let fleet = self.clone();
                tokio::spawn(async move { fleet.halt(id).await })
            })
            .collect();
        for halt in halts {
            let _ = halt.await;
        }
    }

    /// After a devcloud restart: kill process groups a crashed predecessor
    /// left behind, settle interrupted transitions, and boot the machines
    /// that were on.
    pub(crate) async fn recover(&self) {
        let (stale, boots) = self.inner.store.update(|w| {
            let mut stale = std::mem::take(&mut w.orphans);
            let mut boots = Vec::new();
            let ids: Vec<u64> = w.servers.keys().copied().collect();
            for id in ids {
                let Some(server) = w.servers.get_mut(&id) else {
                    continue;
                };
                stale.append(&mut server.processes);
                match server.status {
                    ServerStatus::Initializing => boots.push((
                        id,
                        BootKind::Create {
                            start: server.start_after_create,
                        },
                    )),
                    ServerStatus::Starting | ServerStatus::Running => {
                        boots.push((id, BootKind::PowerOn));
                    }
                    ServerStatus::Stopping => {
                        server.status = ServerStatus::Off;
                        w.reach(id, Milestone::Off);
                    }
                    ServerStatus::Off => {}
                }
            }
            (stale, boots)
        });
        for record in &stale {
            procgroup::kill_stale(record).await;
        }
        for (id, kind) in boots {
            self.inner
                .console(id)
                .line("devcloud restarted; booting again");
            self.boot(id, kind);
        }
    }
}

/// The boot sequence of one machine.
async fn boot(inner: Arc<Inner>, id: u64, generation: u64, kind: BootKind) {
    let fault = first_boot_fault(&inner, id, kind);
    let extra = match fault {
        Some(BootFault::Slow(delay)) => delay,
        _ => std::time::Duration::ZERO,
    };
    tokio::time::sleep(inner.config.boot_delay + extra).await;
    let console = inner.console(id);
    let store = &inner.store;
    if !extra.is_zero() {
        console.line(format!(
            "fault injected: boot took {} ms longer",
            extra.as_millis()
        ));
    }

    if kind == (BootKind::Create { start: false }) {
        store.update(|w| {
            w.set_status(id, ServerStatus::Off);
            w.reach(id, Milestone::Created);
            w.reach(id, Milestone::Off);
        });
        console.line("server created, powered off");
        return;
    }
    let record = store.update(|w| {
        let server = w.servers.get_mut(&id)?;
        if server.status == ServerStatus::Initializing {
            server.status = ServerStatus::Starting;
        }
        let record = server.clone();
        w.reach(id, Milestone::Created);
        Some(record)
    });
    let Some(record) = record else {
        return;
    };

    console.line(format!("power on (address {})", record.ipv4));
    if fault == Some(BootFault::Fail) && !record.cloud_init_done {
        console.line("fault injected: the machine never ran its user-data");
        store.update(|w| {
            if let Some(server) = w.servers.get_mut(&id) {
                server.cloud_init_done = true;
                if server.status == ServerStatus::Starting {
                    server.status = ServerStatus::Running;
                }
            }
            w.reach(id, Milestone::Running);
        });
        return;
    }
    let rootfs = inner.rootfs(id);
    let services = MachineServices {
        inner: Arc::clone(&inner),
        id,
        generation,
        host: Host {
            server_id: id,
            root: rootfs.path().to_path_buf(),
            ipv4: record.ipv4,
            console: console.clone(),
            store: Arc::clone(store),
            image_env: inner.config.image_env.clone(),
        },
    };
    let guest = Guest {
        rootfs: &rootfs,
        console: &console,
        http: &inner.http,
        services: &services,
    };
    let result = if record.cloud_init_done {
        console.line("cloud-init already ran for this instance; starting enabled units");
        start_enabled(&guest, &record.enabled_units).await
    } else {
        console.line("cloud-init: running user-data");
        cloud_config::run(record.user_data.as_deref().unwrap_or_default(), &guest).await
    };
    match &result {
        Ok(()) => console.line("boot finished"),
        Err(e) => console.line(format!("boot failed: {e}")),
    }
    store.update(|w| {
        if let Some(server) = w.servers.get_mut(&id) {
            server.cloud_init_done = true;
            if server.status == ServerStatus::Starting {
                server.status = ServerStatus::Running;
            }
        }
        w.reach(id, Milestone::Running);
    });
}

/// The injected fault for a boot that will run user-data (the first one of
/// the instance); none for later boots and for creating a server off.
fn first_boot_fault(inner: &Inner, id: u64, kind: BootKind) -> Option<BootFault> {
    if kind == (BootKind::Create { start: false }) {
        return None;
    }
    let (done, api) = inner.store.read(|w| {
        w.servers.get(&id).map(|s| {
            let api = if s.scaleway.is_some() {
                Api::Scaleway
            } else {
                Api::Hetzner
            };
            (s.cloud_init_done, api)
        })
    })?;
    if done {
        return None;
    }
    inner.faults.boot_fault(id, api)
}

async fn start_enabled<S: Services>(guest: &Guest<'_, S>, units: &[String]) -> Result<(), String> {
    for unit in units {
        commands::run(guest, &["systemctl".into(), "start".into(), unit.clone()]).await?;
    }
    Ok(())
}

/// [`Services`] for one boot of one machine.
struct MachineServices {
    inner: Arc<Inner>,
    id: u64,
    generation: u64,
    host: Host,
}

impl MachineServices {
    fn take_unit(&self, unit: &str) -> Vec<ServiceHandle> {
        let mut machines = self.inner.machines();
        let Some(machine) = machines.get_mut(&self.id) else {
            return Vec::new();
        };
        let (matching, rest) = std::mem::take(&mut machine.services)
            .into_iter()
            .partition(|s| s.unit == unit);
        machine.services = rest;
        matching
    }
}

impl Services for MachineServices {
    async fn start(&self, spec: ServiceSpec) -> Result<(), String> {
        // `start` on a running unit restarts it, like `systemctl restart`.
        for running in self.take_unit(&spec.unit) {
            running.stop().await;
        }
        let mut machines = self.inner.machines();
        let machine = machines
            .get_mut(&self.id)
            .filter(|m| m.generation == self.generation)
            .ok_or("the server is being stopped")?;
        let handle = service::launch(spec, self.host.clone())?;
        machine.services.push(handle);
        Ok(())
    }

    async fn stop(&self, unit: &str) {
        for running in self.take_unit(unit) {
            running.stop().await;
        }
    }

    fn set_enabled(&self, unit: &str, enabled: bool) {
        self.inner.store.update(|w| {
            if let Some(server) = w.servers.get_mut(&self.id) {
                server.enabled_units.retain(|u| u != unit);
                if enabled {
                    server.enabled_units.push(unit.to_owned());
                }
            }
        });
    }
}

impl Fleet {
    /// SIGKILLs the services running now on `id`, without restart; the
    /// machine stays on. Returns the units killed. A boot still in progress
    /// may start services later.
    pub(crate) async fn kill_services(&self, id: u64) -> Vec<String> {
        let services = {
            let mut machines = self.inner.machines();
            machines
                .get_mut(&id)
                .map(|m| std::mem::take(&mut m.services))
                .unwrap_or_default()
        };
        let units: Vec<String> = services.iter().map(|s| s.unit.clone()).collect();
        let kills: Vec<_> = services
            .into_iter()
            .map(|s| tokio::spawn(s.kill()))
            .collect();
        for kill in kills {
            let _ = kill.await;
        }
        units
    }

    /// Sends `signal` to the process group of every service of `id`;
    /// returns `(unit, pgid)` for each group signalled.
    pub(crate) fn signal_services(&self, id: u64, signal: Signal) -> Vec<(String, i32)> {
        let machines = self.inner.machines();
        machines
            .get(&id)
            .map(|m| {
                m.services
                    .iter()
                    .filter_map(|s| s.signal(signal).map(|pgid| (s.unit.clone(), pgid)))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Writes a line to a server's console (API-side events like deletion).
    pub(crate) fn console_line(&self, id: u64, message: &str) {
        self.inner.console(id).line(message);
    }
}
