# Opt-in, not part of `make test`: build the real image with buildah and run it with podman
# (root; installs buildah/podman/runc/debootstrap from Debian on first use). See docs/docker.md.
.PHONY: container-test
container-test:
	bash tests/deploy/container_test.sh
