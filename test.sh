#!/usr/bin/env bash
# Runs the whole test suite: unit tests, in-process integration tests and the real Linux initiator suite
# (a Debian kernel booted under QEMU). Installs missing Debian test prerequisites itself (needs root or
# sudo). Under CI=true a missing prerequisite is a failure, never a skip.
#
#   ./test.sh                 everything
#   ./test.sh --filter EXPR   passed to dotnet test (e.g. --filter "FullyQualifiedName~LinuxHost")
set -euo pipefail
cd "$(dirname "$0")"

packages=(qemu-system-x86 busybox-static nvme-cli fio kmod cpio docker.io debootstrap tshark)
# The RBD namespace tests run a single-node Ceph cluster (tests/integration/ceph/ceph-up.sh); librbd1 comes with
# ceph-common. Installed without recommends (they pull in much more than a monitor and an OSD need).
ceph_packages=(ceph-mon ceph-osd ceph-common uuid-runtime bc)

# install_missing WHAT [apt-get install options] -- PACKAGE...: installs those of the packages that are missing.
install_missing() {
  local what=$1; shift
  local opts=()
  while [ "$1" != "--" ]; do opts+=("$1"); shift; done
  shift
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  echo "test.sh: installing missing test prerequisites: ${missing[*]}" >&2
  local SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  # Another apt (unattended-upgrades, a second test run) may hold the dpkg lock: wait for it, up to 10 minutes.
  local apt_opts=(-o DPkg::Lock::Timeout=600)
  # tshark (wire trace tests) asks whether non-root users may capture: answer no beforehand so the install never waits.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | $SUDO debconf-set-selections 2>/dev/null || true
  if ! { $SUDO apt-get "${apt_opts[@]}" update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get "${apt_opts[@]}" install -y -qq "${opts[@]}" "${missing[@]}" >/dev/null; }; then
    echo "test.sh: ERROR: could not install ${missing[*]}; $what cannot run" >&2
    exit 1
  fi
}
install_missing "the Linux initiator suite" -- "${packages[@]}"
install_missing "the RBD (Ceph) tests" --no-install-recommends -- "${ceph_packages[@]}"
command -v dotnet >/dev/null || { echo "test.sh: ERROR: the .NET SDK (dotnet) is not on PATH" >&2; exit 1; }

dotnet build NvmeTcpTarget.sln -c Release -nologo -clp:ErrorsOnly
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
# Test assemblies run one after another: the QEMU guest needs both cores to itself.
dotnet test NvmeTcpTarget.sln -c Release --no-build -nologo -m:1 "$@" 2>&1 | tee "$log" || status=$?
passed=$(grep -Eo 'Passed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
failed=$(grep -Eo 'Failed: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
skipped=$(grep -Eo 'Skipped: +[0-9]+' "$log" | awk '{s+=$2} END {print s+0}')
echo "tests: $passed passed, $failed failed, $skipped skipped"
if [ "$status" -eq 0 ] && [ "$passed" -eq 0 ]; then echo "test.sh: ERROR: no test ran" >&2; exit 1; fi
exit "$status"
