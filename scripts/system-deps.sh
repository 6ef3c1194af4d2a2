#!/usr/bin/env bash
# Install Debian packages when run as root; otherwise say exactly what is missing and exit 1.
#
#   scripts/system-deps.sh                 the packages the tests need (`make test`)
#   scripts/system-deps.sh PACKAGE...      these packages (`make demo`: Tesseract only)
set -euo pipefail
# chromium: the dashboard's browser test, and the reports' PDF and timeline images;
# poppler-utils: pdftoppm, which renders report pages in the tests.
packages=(tesseract-ocr tesseract-ocr-eng chromium poppler-utils)
if [[ $# -gt 0 ]]; then packages=("$@"); fi

missing=()
for package in "${packages[@]}"; do
  if command -v dpkg-query >/dev/null 2>&1; then
    dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" \
      || missing+=("$package")
  elif [[ $package == tesseract-ocr ]] && ! command -v tesseract >/dev/null 2>&1; then
    missing+=("$package")
  elif [[ $package == chromium ]] && ! command -v chromium >/dev/null 2>&1; then
    missing+=("$package")
  elif [[ $package == poppler-utils ]] && ! command -v pdftoppm >/dev/null 2>&1; then
    missing+=("$package")
  fi
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages: ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  exit 0
fi
echo "missing system packages: ${missing[*]}" >&2
echo "install them with: sudo apt-get install -y --no-install-recommends ${missing[*]}  (or your system's equivalent)" >&2
exit 1
