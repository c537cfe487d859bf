//! Watching the namespaces the operator is installed for: all of them (a ClusterRole), one, or
//! several (a Role in each, and no right to list anything cluster-wide).
//!
//! Several namespaces need one watch each, merged into the single event stream a reflector and a
//! Controller take. A watch's relist (`Init`, `InitApply`…, `InitDone`) replaces the whole
//! store, so one namespace's relist passed on as it is would drop every other namespace's
//! objects. The merge keeps each namespace's current objects, and when one namespace has
//! relisted it announces a relist of all of them: the store then holds exactly what every watch
//! last saw, and objects deleted during a watch gap leave it.

use std::collections::HashMap;
use std::fmt::Debug;

use futures::{Stream, StreamExt, stream::BoxStream};
use kube::api::Api;
use kube::runtime::watcher::{self, Event};
use kube::{Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;

/// The namespaces to watch: every one, or these (at least one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchScope {
    All,
    Namespaces(Vec<String>),
}

impl WatchScope {
    pub fn new(namespaces: &[&str]) -> WatchScope {
        if namespaces.is_empty() {
            WatchScope::All
        } else {
            WatchScope::Namespaces(namespaces.iter().map(|s| (*s).to_owned()).collect())
        }
    }

    /// One Api per watched namespace (one for all of them).
    pub fn apis<K>(&self, client: &Client) -> Vec<Api<K>>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        match self {
            WatchScope::All => vec![Api::all(client.clone())],
            WatchScope::Namespaces(names) => names
                .iter()
                .map(|ns| Api::namespaced(client.clone(), ns))
                .collect(),
        }
    }

    /// The watch events of every watched namespace, as one watch of their union.
    pub fn watch<K>(
        &self,
        client: &Client,
        config: watcher::Config,
    ) -> BoxStream<'static, Result<Event<K>, watcher::Error>>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + Debug
            + Send
            + 'static,
        K::DynamicType: Default,
    {
        let mut apis = self.apis::<K>(client);
        if apis.len() == 1
            && let Some(api) = apis.pop()
        {
            return watcher(api, config).boxed();
        }
        let count = apis.len();
        let streams = apis
            .into_iter()
            .enumerate()
            .map(|(i, api)| watcher(api, config.clone()).map(move |e| (i, e)).boxed());
        merged(futures::stream::select_all(streams), count).boxed()
    }
}

fn watcher<K>(
    api: Api<K>,
    config: watcher::Config,
) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send
where
    K: Resource + Clone + DeserializeOwned + Debug + Send + 'static,
    K::DynamicType: Default,
{
    kube::runtime::watcher(api, config)
}

/// What the merge knows of each namespace's watch.
struct Merge<K> {
    /// The objects each watch last listed or announced, by name.
    current: Vec<HashMap<String, K>>,
    /// A relist in progress, per watch.
    relisting: Vec<Option<Vec<K>>>,
    /// Whether each watch has listed once: the union is announced only when all have, so a
    /// store is never ready with some namespaces missing.
    listed: Vec<bool>,
}

impl<K: Resource + Clone> Merge<K> {
    fn new(count: usize) -> Self {
        Merge {
            current: (0..count).map(|_| HashMap::new()).collect(),
            relisting: (0..count).map(|_| None).collect(),
            listed: vec![false; count],
        }
    }

    /// The events of the union that one watch's event leads to.
    fn on(&mut self, i: usize, event: Event<K>) -> Vec<Event<K>> {
        match event {
            Event::Apply(obj) => {
                self.current[i].insert(obj.name_any(), obj.clone());
                vec![Event::Apply(obj)]
            }
            Event::Delete(obj) => {
                self.current[i].remove(&obj.name_any());
                vec![Event::Delete(obj)]
            }
            Event::Init => {
                self.relisting[i] = Some(Vec::new());
                Vec::new()
            }
            Event::InitApply(obj) => {
                if let Some(list) = &mut self.relisting[i] {
                    list.push(obj);
                }
                Vec::new()
            }
            Event::InitDone => {
                let listed = self.relisting[i].take().unwrap_or_default();
                self.current[i] = listed.into_iter().map(|o| (o.name_any(), o)).collect();
                self.listed[i] = true;
                if !self.listed.iter().all(|l| *l) {
                    return Vec::new();
                }
                let mut events = vec![Event::Init];
                events.extend(
                    self.current
                        .iter()
                        .flat_map(|objects| objects.values().cloned().map(Event::InitApply)),
                );
                events.push(Event::InitDone);
                events
            }
        }
    }
}

fn merged<K, S>(
    events: S,
    count: usize,
) -> impl Stream<Item = Result<Event<K>, watcher::Error>> + Send
where
    K: Resource + Clone + Send + 'static,
    S: Stream<Item = (usize, Result<Event<K>, watcher::Error>)> + Send + 'static,
{
    let mut merge = Merge::new(count);
    events.flat_map(move |(i, event)| {
        let out: Vec<Result<Event<K>, watcher::Error>> = match event {
            Ok(event) => merge.on(i, event).into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e)],
        };
        futures::stream::iter(out)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::runtime::reflector;

    fn cm(ns: &str, name: &str) -> ConfigMap {
        let mut c = ConfigMap::default();
        c.metadata.namespace = Some(ns.into());
        c.metadata.name = Some(name.into());
        c
    }

    fn names(store: &reflector::Store<ConfigMap>) -> Vec<String> {
        let mut v: Vec<String> = store
            .state()
            .iter()
            .map(|c| format!("{}/{}", c.namespace().unwrap_or_default(), c.name_any()))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn a_relist_of_one_namespace_keeps_the_others_and_drops_what_it_lost() {
        let (reader, mut writer) = reflector::store::<ConfigMap>();
        let mut merge = Merge::new(2);
        let mut feed = |i: usize, e: Event<ConfigMap>| {
            for out in merge.on(i, e) {
                writer.apply_watcher_event(&out);
            }
        };
        feed(0, Event::Init);
        feed(0, Event::InitApply(cm("a", "one")));
        feed(0, Event::InitDone);
        assert!(
            names(&reader).is_empty(),
            "not ready before every namespace has listed"
        );
        feed(1, Event::Init);
        feed(1, Event::InitApply(cm("b", "two")));
        feed(1, Event::InitApply(cm("b", "three")));
        feed(1, Event::InitDone);
        assert_eq!(names(&reader), ["a/one", "b/three", "b/two"]);
        feed(0, Event::Apply(cm("a", "four")));
        feed(1, Event::Delete(cm("b", "two")));
        assert_eq!(names(&reader), ["a/four", "a/one", "b/three"]);
        // Namespace b relists after a watch gap in which b/three was deleted.
        feed(1, Event::Init);
        feed(1, Event::InitApply(cm("b", "five")));
        feed(1, Event::InitDone);
        assert_eq!(names(&reader), ["a/four", "a/one", "b/five"]);
    }
}
