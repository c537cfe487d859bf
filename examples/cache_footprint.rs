//! What one cached GuiSession costs on the heap in kube's reflector store: the object as the
//! apiserver sends it (managedFields of two managers, a client-side `kubectl apply` annotation,
//! the status the operator writes), cached the way the operator caches it (metadata only, see
//! `operator::metadata_of`) against the baseline of caching the whole object with managedFields
//! and the last-applied annotation dropped (what the operator did before). Counts bytes with a
//! counting global allocator: exact heap bytes and allocations, not RSS (the allocator's own
//! overhead, about 8-16 bytes per allocation with glibc, comes on top).
//!
//! ```text
//! cargo run --release --example cache_footprint [-- N]
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::reflector;
use kube::runtime::watcher;
use lightsail_gui_operator::guisession::policy::{
    AccountView, Effect, Input, SecretSeen, Settings, View, transition,
};
use lightsail_gui_operator::guisession::types::{
    GuiSession, GuiSessionStatus, Location, Operation, OperationStatus,
};
use lightsail_gui_operator::process::metadata_of;
use serde_json::json;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static BLOCKS: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        BLOCKS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        BLOCKS.fetch_sub(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: the caller's contract is passed on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> (isize, isize) {
    (LIVE.load(Ordering::Relaxed), BLOCKS.load(Ordering::Relaxed))
}

/// The status the operator writes for a session that started and succeeded: run through the
/// state machine itself, so its shape follows the code.
fn active_status(now: Timestamp) -> GuiSessionStatus {
    let spec = object(0, None).spec;
    let settings = Settings::default();
    let mut status = GuiSessionStatus::default();
    let mut input = Input::Observed;
    for _ in 0..8 {
        let view = View {
            name: "gs-00000",
            spec: &spec,
            status: &status,
            generation: Some(1),
            deleting: false,
            has_finalizer: false,
            skip_stop: false,
            access_secret: SecretSeen::NotRead,
            account: AccountView::Own,
            unconfirmed: None,
        };
        let t = transition(&view, input, now, &settings);
        status = t.status;
        input = match t.effect {
            Effect::Lookup(target) => Input::LookedUp {
                target,
                at: Timestamp::MAX,
                result: Ok(vec![]),
            },
            Effect::Start(target) => Input::StartAnswered {
                fence: status.pending_start.clone(),
                result: Ok(vec![Operation {
                    id: Some("3c0f5a52-5a7e-4d0e-9a4e-1f0b8d7c6e5a".into()),
                    resource_name: Some(target.resource_name.clone()),
                    resource_type: Some("Instance".into()),
                    created_at: Some(now),
                    location: Some(Location {
                        availability_zone: Some("all".into()),
                        region_name: Some("us-east-1".into()),
                    }),
                    is_terminal: Some(true),
                    operation_details: Some(target.resource_name.clone()),
                    operation_type: Some("StartGUISession".into()),
                    status: Some(OperationStatus::Succeeded),
                    status_changed_at: Some(now),
                    error_code: None,
                    error_details: None,
                }]),
                target,
            },
            _ => return status,
        };
    }
    status
}

/// One GuiSession as a watch delivers it.
fn object(i: usize, status: Option<&GuiSessionStatus>) -> GuiSession {
    let name = format!("gs-{i:05}");
    let spec = json!({"resourceName": format!("vm-{i:05}"), "maxSessionAge": "1h"});
    let value = json!({
        "apiVersion": "lightsail.aws.example.com/v1alpha1",
        "kind": "GuiSession",
        "metadata": {
            "name": name,
            "namespace": "bench-burst-1764990000",
            "uid": format!("6f1c2a3b-4d5e-4f60-8a7b-{i:012}"),
            "resourceVersion": format!("{}", 1_000_000 + i),
            "generation": 1,
            "creationTimestamp": "2026-12-06T06:00:00Z",
            "labels": {"app.kubernetes.io/part-of": "lab"},
            "annotations": {
                "kubectl.kubernetes.io/last-applied-configuration":
                    format!("{{\"apiVersion\":\"lightsail.aws.example.com/v1alpha1\",\"kind\":\"GuiSession\",\"metadata\":{{\"name\":\"{name}\"}},\"spec\":{spec}}}\n"),
            },
            "managedFields": [
                {"manager": "kubectl-client-side-apply", "operation": "Update",
                 "apiVersion": "lightsail.aws.example.com/v1alpha1", "time": "2026-12-06T06:00:00Z",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:annotations": {".": {},
                 "f:kubectl.kubernetes.io/last-applied-configuration": {}}, "f:labels": {".": {},
                 "f:app.kubernetes.io/part-of": {}}}, "f:spec": {".": {}, "f:maxSessionAge": {},
                 "f:resourceName": {}}}},
                {"manager": "lightsail-gui-operator", "operation": "Apply",
                 "apiVersion": "lightsail.aws.example.com/v1alpha1", "time": "2026-12-06T06:00:01Z",
                 "fieldsType": "FieldsV1", "subresource": "status", "fieldsV1": {"f:status": {
                 "f:conditions": {"k:{\"type\":\"Ready\"}": {".": {}, "f:lastTransitionTime": {},
                 "f:message": {}, "f:observedGeneration": {}, "f:reason": {}, "f:status": {},
                 "f:type": {}}, "k:{\"type\":\"Reconciling\"}": {".": {}, "f:lastTransitionTime": {},
                 "f:message": {}, "f:observedGeneration": {}, "f:reason": {}, "f:status": {},
                 "f:type": {}}, "k:{\"type\":\"Stalled\"}": {".": {}, "f:lastTransitionTime": {},
                 "f:message": {}, "f:observedGeneration": {}, "f:reason": {}, "f:status": {},
                 "f:type": {}}}, "f:lastStartAt": {}, "f:observedGeneration": {}, "f:operation": {},
                 "f:region": {}, "f:resourceName": {}, "f:sessionExpiresAt": {},
                 "f:sessionStartedAt": {}}}}
            ]
        },
        "spec": spec,
        "status": status,
    });
    serde_json::from_value(value).expect("a valid GuiSession")
}

fn per(bytes: isize, n: usize) -> f64 {
    bytes as f64 / n as f64
}

/// The baseline: the whole object, without managedFields and the last-applied annotation.
fn trimmed(mut obj: GuiSession) -> GuiSession {
    obj.metadata.managed_fields = None;
    if let Some(a) = obj.metadata.annotations.as_mut() {
        a.remove("kubectl.kubernetes.io/last-applied-configuration");
        if a.is_empty() {
            obj.metadata.annotations = None;
        }
    }
    obj
}

/// Heap bytes and allocations that `fill` leaves behind.
fn retained(fill: impl FnOnce()) -> (isize, isize) {
    let before = live();
    fill();
    let after = live();
    (after.0 - before.0, after.1 - before.1)
}

fn main() {
    let n: usize = match std::env::args().nth(1) {
        Some(a) => a.parse().expect("N is a number"),
        None => 10_000,
    };
    let status = active_status(Timestamp::now());
    let wire = serde_json::to_vec(&object(0, Some(&status))).expect("serializes");
    println!(
        "N = {n}; one object on the wire: {} bytes of JSON",
        wire.len()
    );

    let (full_reader, mut full_writer) = reflector::store::<GuiSession>();
    let full = retained(|| {
        full_writer.apply_watcher_event(&watcher::Event::Init);
        for i in 0..n {
            let obj = trimmed(object(i, Some(&status)));
            full_writer.apply_watcher_event(&watcher::Event::InitApply(obj));
        }
        full_writer.apply_watcher_event(&watcher::Event::InitDone);
    });
    assert_eq!(full_reader.state().len(), n);
    drop((full_reader, full_writer));

    let (meta_reader, mut meta_writer) = reflector::store();
    let meta = retained(|| {
        meta_writer.apply_watcher_event(&watcher::Event::Init);
        for i in 0..n {
            let event = metadata_of(watcher::Event::InitApply(object(i, Some(&status))));
            meta_writer.apply_watcher_event(&event);
        }
        meta_writer.apply_watcher_event(&watcher::Event::InitDone);
    });
    assert_eq!(meta_reader.state().len(), n);
    let sample = meta_reader.state()[0].clone();
    assert!(sample.annotations().is_empty() && sample.metadata.managed_fields.is_none());

    println!(
        "{:<58} {:>9} {:>9} {:>9}",
        "reflector store", "B/object", "allocs", "MiB"
    );
    for (what, (bytes, blocks)) in [
        (
            "baseline: whole objects, managedFields/last-applied dropped",
            full,
        ),
        ("operator: metadata only (operator::metadata_of)", meta),
    ] {
        println!(
            "{:<58} {:>9.0} {:>9.1} {:>9.1}",
            what,
            per(bytes, n),
            per(blocks, n),
            bytes as f64 / 1048576.0
        );
    }
    println!(
        "metadata only / baseline: {:.2} of the bytes, {:.2} of the allocations",
        meta.0 as f64 / full.0 as f64,
        meta.1 as f64 / full.1 as f64
    );
    println!(
        "inline sizes: GuiSession {} B, its status {} B, ObjectMeta {} B",
        size_of::<GuiSession>(),
        size_of::<GuiSessionStatus>(),
        size_of::<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>()
    );
}
