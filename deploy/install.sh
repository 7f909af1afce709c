#!/usr/bin/env bash
# Installs the nvme-tcp-target command from this source checkout (one line for source users):
#
#   deploy/install.sh [PREFIX]
#
# publishes the program (framework-dependent: it uses the installed .NET 10 runtime; ReadyToRun-compiled so a
# client command starts in about 0.2 s) into PREFIX/lib/nvme-tcp-target and links PREFIX/bin/nvme-tcp-target to
# it. PREFIX defaults to /usr/local as root and to ~/.local otherwise (make sure PREFIX/bin is on PATH).
# Run it again after pulling to update. Uninstall: rm -r PREFIX/lib/nvme-tcp-target PREFIX/bin/nvme-tcp-target
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ $# -gt 1 ] || [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 2; fi
if [ $# -eq 1 ]; then prefix="$1"; elif [ "$(id -u)" -eq 0 ]; then prefix=/usr/local; else prefix="$HOME/.local"; fi
command -v dotnet >/dev/null || { echo "install.sh: ERROR: the .NET 10 SDK (dotnet) is not on PATH" >&2; exit 1; }
case "$(uname -m)" in x86_64) rid=linux-x64 ;; aarch64) rid=linux-arm64 ;; *) rid="" ;; esac

lib="$prefix/lib/nvme-tcp-target"
stage="$(mktemp -d "${TMPDIR:-/tmp}/nvme-tcp-target-install.XXXXXX")"
trap 'rm -rf "$stage"' EXIT
publish=(dotnet publish "$root/src/Target/Target.csproj" -c Release --nologo -o "$stage/out")
if [ -n "$rid" ] && "${publish[@]}" -r "$rid" --self-contained false -p:PublishReadyToRun=true >"$stage/log" 2>&1; then
  echo "install.sh: published (ReadyToRun, $rid)"
elif "${publish[@]}" >"$stage/log" 2>&1; then
  echo "install.sh: published (without ReadyToRun: its compiler package could not be restored)"
else
  cat "$stage/log" >&2
  echo "install.sh: ERROR: dotnet publish failed" >&2
  exit 1
fi
rm -f "$stage/out"/*.pdb
mkdir -p "$prefix/bin" "$prefix/lib"
rm -rf "$lib.new"
cp -a "$stage/out" "$lib.new"
rm -rf "$lib"
mv "$lib.new" "$lib"
ln -sfn "$lib/nvme-tcp-target" "$prefix/bin/nvme-tcp-target"
echo "install.sh: installed $prefix/bin/nvme-tcp-target -> $lib/nvme-tcp-target"
case ":$PATH:" in *":$prefix/bin:"*) ;; *) echo "install.sh: note: $prefix/bin is not on PATH" ;; esac
