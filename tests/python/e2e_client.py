"""The Python part of the end-to-end suite: the official Kubernetes Python client (PyPI `kubernetes`)
against a cluster where the suite's ib-kubernetes controller runs.

Run by tests/e2e.rs with the suite's kubeconfig, namespace (the only one the controller watches) and
node. Creates a NAD and a pod, watches the pod from a resourceVersion with bookmarks until the
controller's configured annotation appears, reads the controller's Events through both the core/v1
and the events.k8s.io/v1 APIs, patches and deletes. Prints one line per check, the configured GUID as
`configured-guid <GUID>`, and a closing "N passed, N failed" line; exits non-zero on a failure.
"""

import argparse
import json
import sys
import time

from kubernetes import client, config, watch

# The same reporting as the client check beside this script: one line per check, failures collected.
from check_client import RESULTS, check

NETWORKS = "k8s.v1.cni.cncf.io/networks"
# Generous, like the Rust side: a loaded two-core machine, a slow cluster.
DEADLINE = 120


def wait_until(what, fn):
    """Calls fn until it returns something true, for at most DEADLINE seconds."""
    deadline = time.monotonic() + DEADLINE
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {DEADLINE}s waiting for {what}")
        time.sleep(0.25)


def configured_guid(pod):
    """The GUID of the pod's first network once the controller marked it configured, else None."""
    text = (pod.metadata.annotations or {}).get(NETWORKS, "")
    try:
        nets = json.loads(text)
    except ValueError:
        return None
    if not isinstance(nets, list) or not nets:
        return None
    args = nets[0].get("cni-args") or {}
    if args.get("mellanox.infiniband.app") == "configured":
        return args.get("guid")
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--image", required=True)
    parser.add_argument("--pkey", required=True)
    parser.add_argument("--expect-bookmark", action="store_true")
    args = parser.parse_args()
    ns = args.namespace

    config.load_kube_config(config_file=args.kubeconfig)
    core = client.CoreV1Api()
    events = client.EventsV1Api()
    custom = client.CustomObjectsApi()
    state = {}

    def pod(name, networks):
        return client.V1Pod(
            metadata=client.V1ObjectMeta(name=name, annotations={NETWORKS: networks}),
            spec=client.V1PodSpec(
                node_name=args.node, restart_policy="Never", termination_grace_period_seconds=0,
                containers=[client.V1Container(name="c", image=args.image)]))

    @check("create a NAD through the custom objects API")
    def _():
        nad_config = {"cniVersion": "0.3.1", "type": "ib-sriov", "name": "py-ib", "pkey": args.pkey}
        body = {"apiVersion": "k8s.cni.cncf.io/v1", "kind": "NetworkAttachmentDefinition",
                "metadata": {"name": "py-ib"}, "spec": {"config": json.dumps(nad_config)}}
        custom.create_namespaced_custom_object("k8s.cni.cncf.io", "v1", ns, "network-attachment-definitions", body)
        got = custom.get_namespaced_custom_object("k8s.cni.cncf.io", "v1", ns, "network-attachment-definitions", "py-ib")
        assert json.loads(got["spec"]["config"])["pkey"] == args.pkey, got

    @check("create a pod, watch it from the list's resourceVersion with bookmarks until it is configured")
    def _():
        rv = core.list_namespaced_pod(ns).metadata.resource_version
        core.create_namespaced_pod(ns, pod("py-pod", "py-ib"))
        deadline = time.monotonic() + DEADLINE
        guid, bookmarks, added = None, [], False
        # A watch may end (timeout, server-side close); it is resumed from the last version seen.
        while time.monotonic() < deadline and (guid is None or (args.expect_bookmark and not bookmarks)):
            w = watch.Watch()
            for event in w.stream(core.list_namespaced_pod, ns, resource_version=rv, allow_watch_bookmarks=True,
                                  field_selector="metadata.name=py-pod", timeout_seconds=30):
                if event["type"] == "BOOKMARK":
                    bookmark_rv = event["raw_object"]["metadata"]["resourceVersion"]
                    bookmarks.append(bookmark_rv)
                    rv = bookmark_rv
                else:
                    obj = event["object"]
                    rv = obj.metadata.resource_version
                    assert obj.metadata.name == "py-pod", obj.metadata.name
                    added = added or event["type"] == "ADDED"
                    guid = guid or configured_guid(obj)
                if guid is not None and (bookmarks or not args.expect_bookmark):
                    w.stop()
                    break
                if time.monotonic() > deadline:
                    w.stop()
                    break
        assert added, "the watch from before the create saw the pod ADDED"
        assert guid is not None, "the controller's configured annotation never appeared"
        if args.expect_bookmark:
            assert bookmarks, "no BOOKMARK"
        state["guid"] = guid
        print(f"configured-guid {guid}", flush=True)

    @check("read the controller's Event about a bad annotation through core/v1 and events.k8s.io/v1")
    def _():
        bad = '[{"name":"py-ib","cni-args":{"guid":"py-not-a-guid"}}]'
        core.create_namespaced_pod(ns, pod("py-bad", bad))

        def core_event():
            listed = core.list_namespaced_event(ns, field_selector="involvedObject.name=py-bad").items
            return [e for e in listed if e.reason == "InvalidGUID"]
        seen = wait_until("a core/v1 InvalidGUID Event about py-bad", core_event)[0]
        assert "py-not-a-guid" in seen.message, seen.message
        assert seen.involved_object.kind == "Pod" and seen.type == "Warning", seen
        assert seen.reporting_component == "ib-kubernetes", seen.reporting_component

        # The namespace also holds the kubelet's core Events, which carry no eventTime; a real API server
        # returns them through events.k8s.io/v1 with "eventTime": null, which this client's model refuses
        # (kubernetes-client/python issue 1616), so the list is read as JSON. The controller's own Event
        # has an eventTime and is then read through the typed model.
        response = events.list_namespaced_event(ns, _preload_content=False)
        listed = json.loads(response.data)["items"]
        same = [e for e in listed if e["metadata"]["uid"] == seen.metadata.uid]
        assert len(same) == 1, [e["metadata"]["name"] for e in listed]
        e = events.read_namespaced_event(same[0]["metadata"]["name"], ns)
        assert e.event_time is not None, e
        assert e.note == seen.message and e.reason == "InvalidGUID", e
        assert e.regarding.name == "py-bad" and e.reporting_controller == "ib-kubernetes", e
        assert e.metadata.uid == seen.metadata.uid
        pod_now = core.read_namespaced_pod("py-bad", ns)
        assert configured_guid(pod_now) is None, pod_now.metadata.annotations

    @check("patch the configured pod: the controller's annotation is kept")
    def _():
        core.patch_namespaced_pod("py-pod", ns, {"metadata": {"labels": {"checked-by": "python"}}})
        got = core.read_namespaced_pod("py-pod", ns)
        assert got.metadata.labels == {"checked-by": "python"}, got.metadata.labels
        assert configured_guid(got) == state.get("guid"), got.metadata.annotations

    @check("delete the pods and the NAD")
    def _():
        for name in ["py-pod", "py-bad"]:
            core.delete_namespaced_pod(name, ns, grace_period_seconds=0)

        def gone():
            names = {p.metadata.name for p in core.list_namespaced_pod(ns).items}
            return not names & {"py-pod", "py-bad"}
        wait_until("the pods to be gone", gone)
        custom.delete_namespaced_custom_object("k8s.cni.cncf.io", "v1", ns, "network-attachment-definitions", "py-ib")
        try:
            core.read_namespaced_pod("py-pod", ns)
        except client.exceptions.ApiException as exc:
            assert exc.status == 404, exc
        else:
            raise AssertionError("py-pod still there")

    failed = sum(1 for _, exc in RESULTS if exc is not None)
    print(f"{len(RESULTS) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
