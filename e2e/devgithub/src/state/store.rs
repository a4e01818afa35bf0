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
        let first = store.update(|w| {
            let id = w.next_account_id;
            w.next_account_id += 1;
            id
        });
        drop(store);
        let store = Store::open(path).unwrap();
        assert_eq!(store.read(|w| w.next_account_id), first + 1);
    }
}
