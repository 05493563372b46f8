# tests/lab/cpython-tests.sh - run inside a restored python-tests clone (sh -s): a selection of CPython's own regression tests (Debian's libpython3.11-testsuite); prints regrtest's summary and every skip with its reason; exits non-zero when a test fails.
# Modules left out or tests skipped because of the guest are listed, with the
# reason, in docs/guest-image.md ("CPython's own tests in a clone").
MODULES="test_os test_socket test_subprocess test_signal test_tempfile test_shutil test_pwd test_grp
	test_select test_threading test_time test_random test_uuid"
# No -u: resources stay off (network: the sandbox has no internet; cpu,
# largefile, decimal, tzdata: long or large runs). Each skip says so.
cd /tmp
python3 -m test -v --timeout "${CPY_TIMEOUT:-3600}" $MODULES >/tmp/cpython.log 2>&1
rc=$?
echo "== skipped, with reasons:"
grep -E '\.\.\. skipped|^[a-z_]+ skipped' /tmp/cpython.log | sed 's/^/  /'
echo "== failures:"
grep -E '^(FAIL|ERROR):|\.\.\. (FAIL|ERROR)$' /tmp/cpython.log | sed 's/^/  /'
echo "== regrtest's summary:"
sed -n '/^== Tests result\|^Total duration\|^Total tests\|^Tests result\|tests\? OK\.\|failed\|skipped:\|resources\?/p' /tmp/cpython.log | tail -n 40
exit $rc
