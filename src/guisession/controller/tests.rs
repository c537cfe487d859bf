use super::*;
use crate::guisession::types::{GuiSessionSpec, GuiSessionStatus};
use crate::kubernetes::FIELD_MANAGER;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;

fn context() -> Context {
    crate::install_crypto_provider();
    let url = "http://127.0.0.1:9".parse().expect("url");
    let client = kube::Client::try_from(kube::Config::new(url)).expect("client");
    let metrics = Arc::new(Metrics::default());
    let rate = crate::aws::model::RateLimit {
        per_second: std::num::NonZeroU32::MIN,
        burst: std::num::NonZeroU32::MIN,
    };
    let lightsail = Lightsail::from_sdk_config(
        aws_config::SdkConfig::builder().build(),
        None,
        rate,
        metrics.clone(),
    );
    let reporter = Reporter {
        controller: "test".into(),
        instance: None,
    };
    Context::new(
        client,
        Arc::new(lightsail),
        reporter,
        metrics,
        Settings::default(),
        RetryPolicy {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(2),
        },
        LeaderGate::always(),
        Duration::from_secs(30),
        Duration::from_secs(1),
    )
}

fn object(rv: &str, status: Option<GuiSessionStatus>) -> GuiSession {
    let mut gs = GuiSession::new("gs", GuiSessionSpec::for_computer("vm"));
    gs.metadata.namespace = Some("ns".into());
    gs.metadata.resource_version = Some(rv.into());
    gs.status = status;
    gs
}

/// What the watch caches of `gs` in namespace `ns`.
fn cached(name: &str) -> CachedGuiSession {
    let mut gs = GuiSession::new(name, GuiSessionSpec::for_computer("vm"));
    gs.metadata.namespace = Some("ns".into());
    match crate::process::metadata_of(kube::runtime::watcher::Event::Apply(gs)) {
        kube::runtime::watcher::Event::Apply(meta) => meta,
        _ => unreachable!("metadata_of keeps the event's kind"),
    }
}

#[tokio::test]
async fn a_relist_drops_what_is_kept_for_objects_deleted_during_a_watch_gap() {
    use kube::runtime::watcher::Event;
    let ctx = context();
    let (reader, mut writer) = kube::runtime::reflector::store::<CachedGuiSession>();
    writer.apply_watcher_event(&Event::Apply(cached("a")));
    writer.apply_watcher_event(&Event::Apply(cached("b")));
    ctx.set_live(Some(reader));
    let key = |name: &str| ObjectRef::<GuiSession>::new(name).within("ns");
    ctx.next_backoff(key("a"));
    ctx.next_backoff(key("b"));
    // Stored for an object the cache never had (its delete handled before): not kept.
    ctx.next_backoff(key("gone"));
    assert_eq!(ctx.failures.lock().expect("lock").len(), 2);
    // A relist after a watch gap in which b was deleted: no Delete event for it.
    writer.apply_watcher_event(&Event::Init);
    writer.apply_watcher_event(&Event::InitApply(cached("a")));
    writer.apply_watcher_event(&Event::InitDone);
    ctx.retain_live();
    let kept: Vec<String> = ctx
        .failures
        .lock()
        .expect("lock")
        .keys()
        .map(|k| k.name.clone())
        .collect();
    assert_eq!(kept, ["a"]);
    assert!(
        ctx.metrics
            .render()
            .contains("lightsail_gui_operator_tracked_objects{map=\"backoffs\"} 1"),
        "{}",
        ctx.metrics.render()
    );
}

#[tokio::test]
async fn an_unconfirmed_start_is_kept_until_its_fence_leaves_the_status_or_the_object_goes() {
    use crate::guisession::policy::Target;
    use crate::guisession::types::{Operation, PendingStart};
    let ctx = context();
    let fence = PendingStart {
        requested_at: "2026-11-24T12:00:00Z".parse().expect("timestamp"),
        resource_name: "vm".into(),
        region: None,
        account: None,
        holder: "a".into(),
    };
    let mut fenced = object(
        "5",
        Some(GuiSessionStatus {
            pending_start: Some(fence.clone()),
            ..GuiSessionStatus::default()
        }),
    );
    fenced.metadata.managed_fields = Some(vec![ManagedFieldsEntry {
        manager: Some(FIELD_MANAGER.into()),
        ..ManagedFieldsEntry::default()
    }]);
    let start = UnconfirmedStart {
        target: Target {
            resource_name: "vm".into(),
            region: None,
            account: None,
        },
        fence,
        operation: Operation {
            id: Some("op-1".into()),
            ..Operation::default()
        },
    };
    ctx.keep_unconfirmed(&fenced, start.clone());
    ctx.settle_unconfirmed(&fenced);
    assert_eq!(ctx.unconfirmed_of(&fenced), Some(start.clone()));
    // The reconcile that records it reads at least at the fence's version, even while the
    // cache is older (the watch has not caught up); a newer or opaque cached version stands.
    let key = ObjectRef::from_obj(&fenced);
    for (cached, read_at) in [
        (Some("4"), Some("5")),
        (Some("5"), Some("5")),
        (Some("6"), Some("6")),
        (Some("opaque"), Some("opaque")),
        (None, Some("5")),
    ] {
        assert_eq!(
            ctx.read_version(&key, cached.map(String::from)).as_deref(),
            read_at,
            "cache at {cached:?}, fence written at 5"
        );
    }
    // The object as written stands in for that read while the cache is not newer than it
    // (managedFields left out); a newer or opaque cached version is read.
    let mut slim = fenced.clone();
    slim.metadata.managed_fields = None;
    for (cached, stands_in) in [
        (Some("4"), true),
        (Some("5"), true),
        (Some("6"), false),
        (Some("opaque"), false),
        (None, false),
    ] {
        let json = |o: Option<GuiSession>| o.map(|o| serde_json::to_value(o).expect("json"));
        assert_eq!(
            json(ctx.written_object(&key, cached)),
            json(stands_in.then(|| slim.clone())),
            "cache at {cached:?}, fence written at 5"
        );
    }
    // Recorded (the fence cleared): forgotten.
    let recorded = object("6", Some(GuiSessionStatus::default()));
    ctx.settle_unconfirmed(&recorded);
    assert_eq!(ctx.unconfirmed_of(&fenced), None);
    assert_eq!(
        ctx.read_version(&key, Some("4".into())).as_deref(),
        Some("4")
    );
    assert!(ctx.written_object(&key, Some("4")).is_none());
    // Deleted before its poll: forgotten with the object, and so is its backoff.
    ctx.keep_unconfirmed(&fenced, start);
    ctx.next_backoff(key.clone());
    ctx.forget_object(&fenced);
    assert_eq!(ctx.unconfirmed_of(&fenced), None);
    assert!(!ctx.failures.lock().expect("lock").contains_key(&key));
}

#[test]
fn backoff_doubles_is_capped_and_jittered() {
    let p = RetryPolicy {
        initial: Duration::from_secs(2),
        max: Duration::from_secs(60),
    };
    assert_eq!(p.delay(1, 1.0), Duration::from_secs(2));
    assert_eq!(p.delay(2, 1.0), Duration::from_secs(4));
    assert_eq!(p.delay(3, 1.0), Duration::from_secs(8));
    assert_eq!(p.delay(10, 1.0), Duration::from_secs(60));
    assert_eq!(p.delay(u32::MAX, 1.0), Duration::from_secs(60));
    assert_eq!(p.delay(3, 0.0), Duration::from_secs(4));
    assert_eq!(p.delay(0, 1.0), Duration::from_secs(2));
}
