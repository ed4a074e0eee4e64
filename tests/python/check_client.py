"""The official Kubernetes Python client (PyPI `kubernetes`) against the emulator.

Run by crates/kube-emulator/tests/python_client.rs with the path of a kubeconfig that points at a
freshly started emulator: lists (with paging and selectors), watches from a resourceVersion with
bookmarks, patches in three formats, server-side apply, and Events through both Event APIs.
Prints one line per check and a closing "N passed, N failed" line; exits non-zero on a failure.
"""

import datetime
import sys
import traceback

from kubernetes import client, config, watch

NS = "default"
RESULTS = []


def check(name):
    def wrap(fn):
        try:
            fn()
            RESULTS.append((name, None))
            print(f"ok   {name}")
        except Exception as exc:  # report every failure, keep going
            RESULTS.append((name, exc))
            print(f"FAIL {name}: {exc!r}")
            traceback.print_exc()
        return fn
    return wrap


def main(kubeconfig):
    config.load_kube_config(config_file=kubeconfig)
    core = client.CoreV1Api()
    events = client.EventsV1Api()
    now = datetime.datetime.now(datetime.timezone.utc)

    def pod(name, labels):
        return client.V1Pod(
            metadata=client.V1ObjectMeta(name=name, labels=labels),
            spec=client.V1PodSpec(node_name="node-01", containers=[client.V1Container(name="c", image="busybox")]),
        )

    @check("create and list pods, with a label selector and paging")
    def _():
        for i in range(5):
            core.create_namespaced_pod(NS, pod(f"py-{i}", {"app": "py", "n": str(i)}))
        assert len(core.list_namespaced_pod(NS, label_selector="app=py").items) == 5
        assert [p.metadata.name for p in core.list_namespaced_pod(NS, label_selector="n in (1,3)").items] == ["py-1", "py-3"]
        first = core.list_namespaced_pod(NS, limit=2)
        assert len(first.items) == 2 and first.metadata._continue
        rest = core.list_namespaced_pod(NS, limit=10, _continue=first.metadata._continue)
        assert len(first.items) + len(rest.items) == 5 and not rest.metadata._continue
        assert core.list_pod_for_all_namespaces(field_selector="metadata.name=py-4").items[0].metadata.name == "py-4"

    @check("watch from a resourceVersion sees the change after it, then a bookmark")
    def _():
        rv = core.list_namespaced_pod(NS).metadata.resource_version
        core.patch_namespaced_pod("py-0", NS, {"metadata": {"labels": {"watched": "yes"}}})
        seen, bookmark = None, None
        w = watch.Watch()
        for event in w.stream(core.list_namespaced_pod, NS, resource_version=rv,
                              allow_watch_bookmarks=True, timeout_seconds=60):
            if event["type"] == "MODIFIED" and seen is None:
                seen = event["object"]
            elif event["type"] == "BOOKMARK":
                bookmark = event["raw_object"]["metadata"]["resourceVersion"]
                w.stop()
        assert seen is not None and seen.metadata.name == "py-0" and seen.metadata.labels["watched"] == "yes"
        assert bookmark is not None and int(bookmark) >= int(rv)

    @check("a watch from a compacted-away resourceVersion gets 410 Gone")
    def _():
        w = watch.Watch()
        try:
            for _event in w.stream(core.list_namespaced_pod, NS, resource_version="1", timeout_seconds=10):
                pass
        except client.exceptions.ApiException as exc:
            assert exc.status == 410, exc
        else:
            raise AssertionError("no 410")

    @check("patch: strategic merge, JSON merge and JSON patch")
    def _():
        core.patch_namespaced_pod("py-1", NS, {"metadata": {"annotations": {"a": "1"}}})
        core.api_client.call_api(
            f"/api/v1/namespaces/{NS}/pods/py-1", "PATCH", body={"metadata": {"annotations": {"b": "2"}}},
            header_params={"Content-Type": "application/merge-patch+json", "Accept": "application/json"},
            auth_settings=["BearerToken"], _return_http_data_only=True)
        core.patch_namespaced_pod("py-1", NS, [{"op": "add", "path": "/metadata/annotations/c", "value": "3"}])
        annotations = core.read_namespaced_pod("py-1", NS).metadata.annotations
        assert annotations == {"a": "1", "b": "2", "c": "3"}, annotations

    @check("status subresource")
    def _():
        core.patch_namespaced_pod_status("py-2", NS, {"status": {"phase": "Running"}})
        assert core.read_namespaced_pod_status("py-2", NS).status.phase == "Running"

    @check("server-side apply creates, then merges")
    def _():
        # The generated patch methods of this client version cannot choose the apply media type, so
        # the request goes through the client's own call_api, as its documentation shows.
        def apply(body):
            return core.api_client.call_api(
                f"/api/v1/namespaces/{NS}/configmaps/py-cm", "PATCH", body=body,
                query_params=[("fieldManager", "python"), ("force", True)],
                header_params={"Content-Type": "application/apply-patch+yaml", "Accept": "application/json"},
                auth_settings=["BearerToken"], response_type="V1ConfigMap", _return_http_data_only=True)
        # call_api sends the body as JSON, which is YAML.
        apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "py-cm"}, "data": {"x": "1"}})
        cm = apply({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "py-cm"}, "data": {"y": "2"}})
        assert cm.data == {"x": "1", "y": "2"}, cm.data
        assert [m.manager for m in cm.metadata.managed_fields] == ["python"]

    @check("an events.k8s.io/v1 Event is visible as a core v1 Event")
    def _():
        event = client.EventsV1Event(
            metadata=client.V1ObjectMeta(name="py-pod.1"), event_time=now, reason="GuidConflict",
            note="GUID in use", type="Warning", action="Allocate", reporting_controller="ib-kubernetes",
            reporting_instance="ib-0", regarding=client.V1ObjectReference(kind="Pod", namespace=NS, name="py-0"))
        created = events.create_namespaced_event(NS, event)
        seen = core.read_namespaced_event("py-pod.1", NS)
        assert seen.message == "GUID in use" and seen.involved_object.name == "py-0"
        assert seen.metadata.uid == created.metadata.uid
        selected = core.list_namespaced_event(NS, field_selector="involvedObject.name=py-0,reason=GuidConflict")
        assert [e.metadata.name for e in selected.items] == ["py-pod.1"]
        events.patch_namespaced_event("py-pod.1", NS, {"series": {"count": 2, "lastObservedTime": now.isoformat()}})
        assert core.read_namespaced_event("py-pod.1", NS).series.count == 2

    @check("a core v1 Event is visible as an events.k8s.io/v1 Event")
    def _():
        event = client.CoreV1Event(
            metadata=client.V1ObjectMeta(name="py-pod.2"), event_time=now, reason="Scheduled",
            message="assigned", type="Normal", source=client.V1EventSource(component="default-scheduler"),
            involved_object=client.V1ObjectReference(kind="Pod", namespace=NS, name="py-1"))
        core.create_namespaced_event(NS, event)
        seen = events.read_namespaced_event("py-pod.2", NS)
        assert seen.note == "assigned" and seen.regarding.name == "py-1"
        assert seen.deprecated_source.component == "default-scheduler"
        names = sorted(e.metadata.name for e in events.list_namespaced_event(NS).items)
        assert names == ["py-pod.1", "py-pod.2"], names
        events.delete_namespaced_event("py-pod.2", NS)
        assert [e.metadata.name for e in core.list_namespaced_event(NS).items] == ["py-pod.1"]

    @check("nodes are listed")
    def _():
        assert isinstance(core.list_node().items, list)

    @check("delete pods, with a 404 for a missing one")
    def _():
        for i in range(5):
            core.delete_namespaced_pod(f"py-{i}", NS, grace_period_seconds=0)
        try:
            core.read_namespaced_pod("py-0", NS)
        except client.exceptions.ApiException as exc:
            assert exc.status == 404
        else:
            raise AssertionError("still there")

    failed = sum(1 for _, exc in RESULTS if exc is not None)
    print(f"{len(RESULTS) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
