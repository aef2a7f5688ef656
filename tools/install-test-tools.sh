#!/usr/bin/env bash
# System tools the tests drive for real: a virtual screen (Xvfb) with xdotool
# (and fonts) for the montage windows, and headless Chromium for the HTML gallery.
# Installed with apt-get when we are root; otherwise say what is missing.
set -u
need=()
command -v Xvfb >/dev/null || need+=(xvfb)
command -v xdotool >/dev/null || need+=(xdotool)
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
# Fonts for OpenCV's Qt windows: without any, Qt prints "QFontDatabase: Cannot find font directory".
ls /usr/share/fonts/truetype/dejavu/*.ttf >/dev/null 2>&1 || need+=(fonts-dejavu-core)
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "[INFO] apt-get install ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
else
    echo "[WARNING] not installed: ${need[*]} (sudo apt-get install ${need[*]}); those tests will be skipped" >&2
fi
exit 0
