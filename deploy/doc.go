// Package deploy holds the deployment files of the platform (example
// configuration, systemd units, the container images' Containerfile,
// compose.yaml and the Kubernetes manifests) and the tests that check them
// against the programs they configure.
package deploy
