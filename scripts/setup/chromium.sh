# shellcheck shell=bash
# Sourced by scripts/test.sh: a headless browser for the web UI tests (`tests/ui_browser.rs`).
#
# Installs Debian's `chromium` and `chromium-driver` if needed. Starts nothing: each test run
# starts its own chromedriver on a free loopback port and stops it by pid.
# Exports: KLOUD_TEST_CHROMIUM (the browser binary), KLOUD_TEST_CHROMEDRIVER (the WebDriver
#          server binary).

kloud_setup_chromium() {
    local need=()
    [ -x /usr/bin/chromium ] || need+=(chromium)
    [ -x /usr/bin/chromedriver ] || need+=(chromium-driver)
    if [ ${#need[@]} -gt 0 ]; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
            "${need[@]}" >/dev/null || return 1
    fi
    /usr/bin/chromium --version >/dev/null 2>&1 || { echo "chromium.sh: chromium does not run" >&2; return 1; }
    export KLOUD_TEST_CHROMIUM=/usr/bin/chromium
    export KLOUD_TEST_CHROMEDRIVER=/usr/bin/chromedriver
}

kloud_setup_chromium
