# expect.sh - the assertions of the shell tests (sourced; needs $tmp, a
# scratch directory). Each records a pass or prints the failure with the
# command's output; the caller prints "N passed, N failed" at the end.
passed=0
failed=0
# expect_ok REGEX CMD...: exit 0, stdout matches REGEX (grep -E).
expect_ok() {
    local regex=$1; shift
    if "$@" >"$tmp/out" 2>"$tmp/err" && grep -qE -- "$regex" "$tmp/out"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL (expected success matching '$regex'): $*"
        sed 's/^/  | /' "$tmp/out" "$tmp/err" | head -20
    fi
}

# expect_error REGEX CMD...: exit 1 and one stderr line matching REGEX
# (start-up's "INFO flashlm:" log lines are not errors and are not counted).
expect_error() {
    local regex=$1; shift
    "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$?
    local lines
    lines=$(grep -vc '^INFO flashlm: ' "$tmp/err")
    if [ "$rc" -eq 1 ] && [ "$lines" -eq 1 ] && grep -qE -- "$regex" "$tmp/err"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "FAIL (expected exit 1 and one line matching '$regex', got exit $rc, $lines lines): $*"
        sed 's/^/  | /' "$tmp/err" | head -20
    fi
}
