//! One copy of each name that many pods and claims repeat: namespaces, node names, network names and
//! interface names. At 100,000 pods with 275,000 interfaces, a copy of each per pod and per claim is
//! over a million small strings, where a cluster has a few hundred distinct names.
//!
//! Invariant: equal names entering the state through [`Names`] share one allocation. Names nothing
//! else holds any more are dropped once the set has doubled since the last sweep, so names of pods and
//! networks long gone do not pile up, and the sweep costs O(1) per name added.

use std::collections::HashSet;
use std::sync::Arc;

use crate::annotation::NetworkRef;
use crate::pod::{InterfaceKey, PodView};

/// Below this many names the set is never swept.
const FIRST_SWEEP: usize = 1024;

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Names {
    names: HashSet<Arc<str>>,
    /// The set is swept when it reaches this many names.
    sweep_at: usize,
}

impl Default for Names {
    fn default() -> Self {
        Names { names: HashSet::new(), sweep_at: FIRST_SWEEP }
    }
}

impl Names {
    /// The shared copy of `name`.
    pub(crate) fn share(&mut self, name: &Arc<str>) -> Arc<str> {
        if let Some(shared) = self.names.get(&**name) {
            return Arc::clone(shared);
        }
        if self.names.len() >= self.sweep_at {
            self.names.retain(|n| Arc::strong_count(n) > 1);
            self.sweep_at = (self.names.len() * 2).max(FIRST_SWEEP);
        }
        self.names.insert(Arc::clone(name));
        Arc::clone(name)
    }

    /// A network reference made of shared names.
    pub(crate) fn network(&mut self, network: &NetworkRef) -> NetworkRef {
        NetworkRef { namespace: self.share(&network.namespace), name: self.share(&network.name) }
    }

    /// An interface key made of shared names (the pod's uid is already shared by every map that knows
    /// the pod).
    pub(crate) fn key(&mut self, key: InterfaceKey) -> InterfaceKey {
        InterfaceKey { network: self.network(&key.network), interface: self.share(&key.interface), pod: key.pod }
    }

    /// A pod's view with its namespace and node shared.
    pub(crate) fn view(&mut self, mut view: PodView) -> PodView {
        view.namespace = self.share(&view.namespace);
        if let Some(node) = view.node_name.as_mut() {
            *node = self.share(node);
        }
        view
    }

    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.names.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_names_share_one_copy() {
        let mut names = Names::default();
        let a = names.share(&Arc::from("ib-0"));
        let b = names.share(&Arc::from(String::from("ib-0")));
        assert!(Arc::ptr_eq(&a, &b));
        let c = names.share(&Arc::from("ib-1"));
        assert!(!Arc::ptr_eq(&a, &c));
        let key = |interface: &str| InterfaceKey {
            pod: "uid".into(),
            network: NetworkRef::new("bench", "ib-0"),
            interface: interface.into(),
        };
        let (k1, k2) = (names.key(key("net1")), names.key(key("net1")));
        assert_eq!(k1, key("net1"), "sharing changes no value");
        assert!(Arc::ptr_eq(&k1.network.name, &a) && Arc::ptr_eq(&k1.interface, &k2.interface));
        assert!(Arc::ptr_eq(&k1.network.namespace, &k2.network.namespace));
    }

    #[test]
    fn names_nothing_holds_are_dropped_as_the_set_grows() {
        let mut names = Names::default();
        let kept = names.share(&Arc::from("kept"));
        for i in 0..10 * FIRST_SWEEP {
            drop(names.share(&Arc::from(format!("gone-{i}"))));
        }
        assert!(names.len() <= 2 * FIRST_SWEEP, "{} names kept", names.len());
        assert!(Arc::ptr_eq(&names.share(&Arc::from("kept")), &kept), "a name still held stays shared");
    }
}
