# imaforge for CI jobs: Debian 12 with the released .deb installed
# (docs/release.md). Build it after `make release`, from the repository root:
#
#   docker build --build-arg VERSION=0.0~gitabc1234 -t imaforge .
#   docker run --rm -v "$PWD:/work" -w /work imaforge build image.yaml
#
# The RUN line is what `make test` runs in a clean Debian 12 chroot
# (scripts/release-test.sh), so it is tested without a container runtime.
FROM debian:bookworm-slim
ARG TARGETARCH=amd64
ARG VERSION
COPY dist/imaforge_${VERSION}_${TARGETARCH}.deb /tmp/imaforge.deb
RUN dpkg -i /tmp/imaforge.deb && rm /tmp/imaforge.deb && imaforge version
ENTRYPOINT ["imaforge"]
