# Sourced by scripts/setup.sh and scripts/setup-tests.sh: the machine's own
# apt, its lists updated at most once a run, and only when something is
# missing.
apt_updated=
apt_update() {
    [ -n "$apt_updated" ] && return
    apt-get update -qq
    apt_updated=1
}

# Installs the named packages; none named, nothing is done.
apt_install() {
    [ $# -gt 0 ] || return 0
    apt_update
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@"
}
