//! Which GuiSessions name which account: the index that turns an account change into a wake-up
//! of exactly its sessions.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use kube::runtime::reflector::ObjectRef;

use kube::ResourceExt;

use crate::account::types::AccountKey;
use crate::guisession::types::GuiSession;

/// Which GuiSessions name which account, kept from the GuiSession watch: waking the sessions of a
/// changed account is a lookup, not a scan or a resync.
#[derive(Default)]
pub struct AccountIndex {
    inner: Mutex<IndexMaps>,
    /// Whether GuiSessions without an account are indexed too (by namespace): only when the
    /// operator's own identity is limited to selected namespaces, whose label changes must wake
    /// them.
    track_own: bool,
}

#[derive(Default)]
struct IndexMaps {
    by_session: HashMap<ObjectRef<GuiSession>, AccountKey>,
    by_account: HashMap<AccountKey, HashSet<ObjectRef<GuiSession>>>,
    /// GuiSessions using the operator's own identity (see `track_own`).
    own: HashSet<ObjectRef<GuiSession>>,
}

impl AccountIndex {
    /// An index that also keeps the GuiSessions using the operator's own identity.
    pub fn tracking_own_identity() -> AccountIndex {
        AccountIndex {
            track_own: true,
            ..AccountIndex::default()
        }
    }

    /// Records what `obj` names now; returns the accounts whose GuiSession count changed.
    pub fn apply(&self, obj: &GuiSession) -> Vec<AccountKey> {
        let key = ObjectRef::from_obj(obj);
        let account = obj
            .spec
            .account_ref
            .as_ref()
            .zip(obj.namespace())
            .map(|(r, ns)| AccountKey::of(r, &ns));
        let mut maps = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        if self.track_own {
            if account.is_none() {
                maps.own.insert(key.clone());
            } else {
                maps.own.remove(&key);
            }
        }
        if maps.by_session.get(&key) == account.as_ref() {
            return Vec::new();
        }
        let mut changed: Vec<AccountKey> = maps.remove(&key).into_iter().collect();
        if let Some(account) = account {
            maps.by_account
                .entry(account.clone())
                .or_default()
                .insert(key.clone());
            maps.by_session.insert(key, account.clone());
            changed.push(account);
        }
        changed
    }

    /// Forgets a deleted GuiSession; returns the account it named.
    pub fn delete(&self, obj: &GuiSession) -> Option<AccountKey> {
        let key = ObjectRef::from_obj(obj);
        let mut maps = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        maps.own.remove(&key);
        maps.remove(&key)
    }

    /// The GuiSessions that name `account`.
    pub fn sessions(&self, account: &AccountKey) -> Vec<ObjectRef<GuiSession>> {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_account
            .get(account)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The GuiSessions in `namespace` whose namespace's labels decide what they may use: those
    /// naming a ClusterLightsailAccount, and (when tracked) those using the operator's own
    /// identity.
    pub fn label_dependent_sessions_in(&self, namespace: &str) -> Vec<ObjectRef<GuiSession>> {
        let maps = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let in_namespace = |s: &&ObjectRef<GuiSession>| s.namespace.as_deref() == Some(namespace);
        maps.by_session
            .iter()
            .filter(|(_, account)| account.namespace.is_none())
            .map(|(session, _)| session)
            .chain(maps.own.iter())
            .filter(in_namespace)
            .cloned()
            .collect()
    }

    /// Keeps only the GuiSessions `live` holds (after a relist, which reports no deletes);
    /// returns the accounts whose GuiSession count changed.
    pub fn retain(&self, live: impl Fn(&ObjectRef<GuiSession>) -> bool) -> Vec<AccountKey> {
        let mut maps = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        maps.own.retain(|s| live(s));
        let gone: Vec<ObjectRef<GuiSession>> = maps
            .by_session
            .keys()
            .filter(|s| !live(s))
            .cloned()
            .collect();
        let mut changed: Vec<AccountKey> = gone.iter().filter_map(|s| maps.remove(s)).collect();
        changed.sort();
        changed.dedup();
        changed
    }

    /// GuiSessions indexed (naming an account, or tracked for the own identity).
    pub fn indexed(&self) -> usize {
        let maps = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        maps.by_session.len() + maps.own.len()
    }

    pub fn count(&self, account: &AccountKey) -> u32 {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .by_account
            .get(account)
            .map_or(0, |s| u32::try_from(s.len()).unwrap_or(u32::MAX))
    }
}

impl IndexMaps {
    fn remove(&mut self, key: &ObjectRef<GuiSession>) -> Option<AccountKey> {
        let old = self.by_session.remove(key)?;
        if let Some(set) = self.by_account.get_mut(&old) {
            set.remove(key);
            if set.is_empty() {
                self.by_account.remove(&old);
            }
        }
        Some(old)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::types::{AccountKind, AccountRef};
    use crate::guisession::types::GuiSessionSpec;

    fn session(name: &str, account: Option<&str>) -> GuiSession {
        let mut spec = GuiSessionSpec::for_computer("vm");
        spec.account_ref = account.map(|a| AccountRef {
            kind: AccountKind::LightsailAccount,
            name: a.into(),
        });
        let mut gs = GuiSession::new(name, spec);
        gs.metadata.namespace = Some("ns".into());
        gs
    }

    #[test]
    fn a_relist_drops_the_sessions_it_no_longer_lists_and_recounts_their_accounts() {
        let index = AccountIndex::tracking_own_identity();
        index.apply(&session("a", Some("lab")));
        index.apply(&session("b", Some("lab")));
        index.apply(&session("c", None));
        let lab = AccountKey {
            namespace: Some("ns".into()),
            name: "lab".into(),
        };
        assert_eq!((index.count(&lab), index.indexed()), (2, 3));
        let changed = index.retain(|s| s.name == "a");
        assert_eq!(changed, vec![lab.clone()], "lab lost b");
        assert_eq!((index.count(&lab), index.indexed()), (1, 1));
        assert!(
            index.label_dependent_sessions_in("ns").is_empty(),
            "c is gone"
        );
    }
}
