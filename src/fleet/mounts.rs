//! Small builders of volume mounts and projected keys, shared by the registry container and
//! the token-service sidecar.

use k8s_openapi::api::core::v1::{KeyToPath, VolumeMount};

/// A read-only mount of volume `name` at `path`.
pub fn mount(name: &str, path: &str) -> VolumeMount {
    VolumeMount {
        name: name.to_string(),
        mount_path: path.to_string(),
        read_only: Some(true),
        ..VolumeMount::default()
    }
}

/// A Secret or ConfigMap item mounted under its own key as file name.
pub fn key_to_path(key: &str) -> KeyToPath {
    KeyToPath {
        key: key.into(),
        path: key.into(),
        mode: None,
        user: None,
    }
}
