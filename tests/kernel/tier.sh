#!/bin/sh
# The VM test tier, run inside the VM by `make test-kernel` (tests/kernel/vm.py boots it): load the
# IPVS modules, point the tests at the real ipvsadm and a disposable kernel table, run pytest, then
# print the report the tests wrote (traffic table, timings).
set -u
for m in ip_vs ip_vs_rr ip_vs_wrr ip_vs_wlc ip_vs_lc ip_vs_sh ip_vs_mh ip_vs_dh ip_vs_sed \
         ip_vs_nq ip_vs_fo ip_vs_ovf ip_vs_lblc ip_vs_lblcr dummy veth ipip ip6_tunnel; do
    modprobe "$m" || echo "tier: modprobe $m failed"
done
export IPVSWM_TEST_IPVSADM=/usr/sbin/ipvsadm
# The VM's table is nobody's: tests may clear and load it.
export IPVSWM_TEST_TABLE_DISPOSABLE=1
export IPVSWM_VM_REPORT=/tmp/ipvswm-vm-report.txt
: > "$IPVSWM_VM_REPORT"
started=$(date +%s)
# Python under TCG is several times slower than on the host: give the suite's timeouts room.
# Arguments (test paths) replace the default selection.
[ $# -gt 0 ] || set -- tests/kernel tests/unit/test_emulator_conformance.py \
    tests/integration/test_ipvsadm_backend.py tests/unit/test_reconcile_backends.py
.venv/bin/pytest -q -p no:cacheprovider --timeout 600 --durations=8 "$@"
status=$?
echo "== VM tier report (real kernel $(uname -r))"
cat "$IPVSWM_VM_REPORT"
echo "kernel tier: pytest exit $status in $(( $(date +%s) - started )) s"
exit $status
