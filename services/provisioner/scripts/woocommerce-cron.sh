#!/usr/bin/env bash
# One run of a store's WP-Cron, from its CronJob: every WooCommerce action (Action Scheduler) that is due, then every
# WordPress event that is due, with WP-CLI in the store's own image, as uid 33 on WordPress's volume. The run fails,
# and its Job with it, when any of that fails (an action that throws, an event's PHP error); the next scheduled run
# is the retry.
#
# The actions go first, through `wp action-scheduler run`, which names each one that fails: Action Scheduler's own
# cron event (action_scheduler_run_queue, among the events) runs them too, but says nothing when one fails, so it is
# left only what became due during this run.
#
# Why not wp-cron.php, as WordPress does it: one request runs the due events in order, and a handler that ends the
# process ends the request. WooCommerce's background-process health checks (`wp_1_wc_*_cron`) call `exit` when they
# are done, so every event due after one of them was skipped until the next cycle, while the caller still saw 200.
# WP-CLI's `wp cron event run --due-now` runs the events the same way, but it shows when that happened: it prints
# its closing "Success: Executed a total of N cron events." only when it got through all of them. So a round that
# ends without that line is followed by another; WP-CLI reschedules (or removes) each event before it runs it, so
# every round gets further, and the rounds end when one finds nothing left to stop it.
#
# Environment: STORE_URL, and the WORDPRESS_DB_* variables wp-config.php reads. Optional: WP_PATH (the document
# root), CRON_ROUNDS (20: the most rounds one run makes).
set -euo pipefail

: "${STORE_URL:?}"
WP_PATH=${WP_PATH:-/var/www/html}
CRON_ROUNDS=${CRON_ROUNDS:-20}

log() { printf 'cron: %s\n' "$*"; }
fail() { printf 'cron: FAILED: %s\n' "$*" >&2; exit 1; }
wpcli() { wp --path="$WP_PATH" --url="$STORE_URL" "$@"; }

run_due_events() {
  local round output status
  for ((round = 1; round <= CRON_ROUNDS; round++)); do
    status=0
    output=$(wpcli cron event run --due-now 2>&1) || status=$?
    [[ -z $output ]] || printf '%s\n' "$output"
    ((status == 0)) || fail "wp cron event run ended with exit code $status"
    if grep -q '^Success: Executed a total of ' <<<"$output"; then
      return
    fi
    log "round $round ended before its last event (an event's handler ended the process); running what is still due"
  done
  fail "events were still due after $CRON_ROUNDS rounds"
}

run_due_actions() {
  local output status=0
  # Every due action, in batches, until none is left (Action Scheduler's own queue runner, as its cron event starts
  # it, but not limited to one batch of 30 seconds). An action that fails is reported on stderr, and the command
  # still exits 0.
  output=$(wpcli action-scheduler run 2>&1) || status=$?
  [[ -z $output ]] || printf '%s\n' "$output"
  ((status == 0)) || fail "wp action-scheduler run ended with exit code $status"
  failed_actions=$(grep -c '^Error: Error processing action ' <<<"$output" || true)
}

# The CronJob exists from before the store's bootstrap (so that the bootstrap's end is the store's READY), so a run
# may come before the bootstrap installed WordPress: then there is nothing to run. `core is-installed` answers by its
# exit code alone; a failure says why (the database unreachable, no wp-config.php), and fails the run.
installed() {
  local output status=0
  output=$(wpcli core is-installed 2>&1) || status=$?
  ((status == 0)) && return 0
  [[ -z $output ]] || { printf '%s\n' "$output"; fail "wp core is-installed ended with exit code $status"; }
  return 1
}

if ! installed; then
  log "WordPress is not installed yet (the store's bootstrap installs it): nothing to run"
  exit 0
fi
failed_actions=0
# Without WooCommerce (before the bootstrap activated it, or after the owner switched it off) there are no actions,
# only WordPress's own events.
if wpcli plugin is-active woocommerce; then
  run_due_actions
else
  log "WooCommerce is not active: WordPress's events only"
fi
run_due_events
# A failed action is not run again, so the events above still had their turn; the run reports it.
((failed_actions == 0)) ||
  fail "$failed_actions scheduled action(s) failed (their logs: WooCommerce, Status, Scheduled Actions, Failed)"
log "done"
