//! A test environment of its own for one operator test: a namespace on the shared control plane
//! and an in-process Lightsail simulator.

use std::time::Duration;

use futures::StreamExt;
use kube::api::Api;
use lightsail_gui_operator::guisession::types::GuiSession;
use lightsail_sim::{RunningSimulator, SimConfig, Simulator};

use super::operator::*;
use super::{control_plane, install_crds, test_namespace};

/// How long a test waits for the operator to get somewhere.
pub const WAIT: Duration = Duration::from_secs(60);

/// Ready as kstatus means it: `Ready=True` for the current generation, and a session (not a
/// suspended object, which is Ready too).
pub fn ready(gs: &GuiSession) -> bool {
    condition(gs, "Ready").is_some_and(|c| c.status == "True" && c.reason != "Suspended")
        && gs.status.as_ref().and_then(|s| s.observed_generation) == gs.metadata.generation
}

/// A settle window of seconds instead of a minute (with calls bounded to fit inside it), for
/// tests that wait one out.
pub fn fast_settle(o: OperatorOptions<'_>) -> OperatorOptions<'_> {
    o.arg("--start-settle", "8s")
        .arg("--lightsail-timeout", "5s")
}

pub struct Env {
    pub client: kube::Client,
    pub namespace: String,
    pub api: Api<GuiSession>,
    pub sim: RunningSimulator,
}

pub async fn env(test: &str, sim: SimConfig) -> Env {
    let cp = control_plane();
    let client = cp.client().await;
    install_crds(&client).await;
    let namespace = test_namespace(&client, test).await;
    let api = Api::namespaced(client.clone(), &namespace);
    let sim = Simulator::start(sim, "127.0.0.1:0")
        .await
        .expect("simulator starts");
    Env {
        client,
        namespace,
        api,
        sim,
    }
}

impl Env {
    pub fn operator(&self, configure: impl FnOnce(OperatorOptions) -> OperatorOptions) -> Operator {
        let url = self.sim.endpoint_url();
        Operator::start(
            control_plane(),
            configure(OperatorOptions::new(&self.namespace, &url)),
        )
    }

    /// Applies a GuiSession and waits until it is Ready.
    pub async fn apply_until_ready(&self, name: &str, spec: serde_json::Value) -> GuiSession {
        apply(&self.api, guisession(name, spec)).await;
        wait_for(&self.api, name, WAIT, "Ready", ready).await
    }

    pub fn starts(&self, resource: &str) -> u64 {
        self.sim
            .calls()
            .count(Some("StartGUISession"), Some(resource), None)
    }

    pub fn calls(&self, resource: &str) -> u64 {
        self.sim.calls().count(None, Some(resource), None)
    }

    pub fn sdk(&self) -> aws_sdk_lightsail::Client {
        sim_sdk(&self.sim.endpoint_url())
    }
}

/// True when the object does not change for `window` (watching it).
pub async fn wait_for_no_change(api: &Api<GuiSession>, name: &str, window: Duration) -> bool {
    let gs = api.get(name).await.expect("get");
    let rv = gs.metadata.resource_version.expect("rv");
    let params = kube::api::WatchParams::default()
        .fields(&format!("metadata.name={name}"))
        .timeout(window.as_secs() as u32);
    let mut stream = api.watch(&params, &rv).await.expect("watch").boxed();
    while let Some(event) = stream.next().await {
        if let Ok(kube::api::WatchEvent::Modified(_)) = event {
            return false;
        }
    }
    true
}

/// Waits (with a deadline) until the GuiSession is gone.
pub async fn wait_deleted(api: &Api<GuiSession>, name: &str) {
    let Some(obj) = api.get_opt(name).await.expect("get") else {
        return;
    };
    let uid = obj.metadata.uid.clone().expect("uid");
    let gone = kube::runtime::wait::await_condition(
        api.clone(),
        name,
        kube::runtime::wait::conditions::is_deleted(&uid),
    );
    match tokio::time::timeout(WAIT, gone).await {
        Ok(Ok(_)) => {}
        other => panic!("{name} not deleted within {WAIT:?}: {other:?}"),
    }
}
