//! The world behind a mutex, written to `state.json` after every change
//! (the shared [`sam_standin_kit::JsonStore`]).

use super::World;

pub(crate) type Store = sam_standin_kit::JsonStore<World>;
pub use sam_standin_kit::StoreError;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn survives_reopen_and_keeps_counters() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let store = Store::open(path.clone()).unwrap();
        let (id, ip) = store.update(|w| (w.allocate_server_id(), w.allocate_ipv4()));
        drop(store);
        let store = Store::open(path).unwrap();
        let (id2, ip2) = store.update(|w| (w.allocate_server_id(), w.allocate_ipv4()));
        assert_eq!(id2, id + 1);
        assert_ne!(ip, ip2);
    }
}
