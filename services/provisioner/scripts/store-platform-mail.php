<?php
/**
 * Plugin Name: store-platform mail
 * Description: Sends this store's mail through the platform's SMTP relay. Without a relay, mail is off: nothing is sent, and nothing calls a sendmail the image does not have.
 *
 * A must-use plugin the platform installs into wp-content/mu-plugins on every start of the store (its edits are
 * overwritten). The relay's settings come from the environment the platform gives WordPress and the bootstrap Job:
 * STORE_SMTP_HOST (empty: mail off), STORE_SMTP_PORT, STORE_SMTP_SECURITY (starttls, tls or none),
 * STORE_SMTP_USERNAME, STORE_SMTP_PASSWORD (from the store's Secret) and STORE_SMTP_FROM.
 *
 * One web request spends at most STORE_PLATFORM_MAIL_BUDGET seconds on the relay, however many mails it sends (a
 * checkout sends two): each mail may wait only for what is left, and once nothing is left the rest are reported not
 * sent at once. A relay that accepts the connection and then says nothing costs a customer seconds, never minutes.
 * WP-CLI (the store's cron runs, its bootstrap) has nobody waiting: there each mail gets the whole budget.
 */

defined( 'ABSPATH' ) || exit;

/** The relay's settings, or null when the platform has none. */
function store_platform_smtp() {
	$host = (string) getenv( 'STORE_SMTP_HOST' );
	if ( '' === $host ) {
		return null;
	}
	return array(
		'host'     => $host,
		'port'     => (int) ( getenv( 'STORE_SMTP_PORT' ) ?: 587 ),
		'security' => (string) ( getenv( 'STORE_SMTP_SECURITY' ) ?: 'starttls' ),
		'username' => (string) getenv( 'STORE_SMTP_USERNAME' ),
		'password' => (string) getenv( 'STORE_SMTP_PASSWORD' ),
		'from'     => (string) getenv( 'STORE_SMTP_FROM' ),
	);
}

if ( null === store_platform_smtp() ) {
	// No relay: every mail is reported as not sent (WordPress then tells the person, e.g. on a password reset),
	// before PHP's mail() is ever called, with one line in the log so an operator can see mail is off. Runs last,
	// so a plugin that sends mail its own way still can.
	add_filter(
		'pre_wp_mail',
		static function ( $short_circuit, $atts ) {
			if ( null !== $short_circuit ) {
				return $short_circuit;
			}
			error_log( 'store-platform mail: mail is off (the platform has no SMTP relay); not sent: ' . wp_strip_all_tags( (string) ( $atts['subject'] ?? '' ) ) );
			return false;
		},
		PHP_INT_MAX,
		2
	);
	return;
}

/** The most one request spends talking to the relay, in seconds. */
const STORE_PLATFORM_MAIL_BUDGET = 15;

/** Seconds of the request's budget left; with $spent, takes that many first. */
function store_platform_mail_budget_left( $spent = 0.0 ) {
	static $left = STORE_PLATFORM_MAIL_BUDGET;
	$left -= $spent;
	return $left;
}

/** When the mail under way began (set with $now as it starts), or null; reading it ends it. */
function store_platform_mail_started( $now = null ) {
	static $started = null;
	$was     = $started;
	$started = $now;
	return $was;
}

/** The mail under way is over, sent or not: its time is taken from a web request's budget. */
function store_platform_mail_done() {
	$began = store_platform_mail_started();
	if ( null !== $began && ! ( defined( 'WP_CLI' ) && WP_CLI ) ) {
		store_platform_mail_budget_left( microtime( true ) - $began );
	}
}

// Once the budget is spent, the request's remaining mails are not tried. Runs last, so a plugin that sends mail its
// own way still can.
add_filter(
	'pre_wp_mail',
	static function ( $short_circuit, $atts ) {
		if ( null !== $short_circuit ) {
			return $short_circuit;
		}
		if ( store_platform_mail_budget_left() >= 1 ) {
			return null;
		}
		error_log(
			sprintf(
				'store-platform mail: not sent: the relay took up the %d s this request may spend on mail; %s',
				STORE_PLATFORM_MAIL_BUDGET,
				wp_strip_all_tags( (string) ( $atts['subject'] ?? '' ) )
			)
		);
		return false;
	},
	PHP_INT_MAX,
	2
);
add_action( 'wp_mail_succeeded', 'store_platform_mail_done' );
add_action( 'wp_mail_failed', 'store_platform_mail_done', 0 );

add_action(
	'phpmailer_init',
	static function ( $mailer ) {
		$smtp = store_platform_smtp();
		$mailer->isSMTP();
		$mailer->Host    = $smtp['host'];
		$mailer->Port    = $smtp['port'];
		// A relay that accepts the connection and then says nothing may take what is left of the request's
		// budget, not the 5 minutes PHPMailer waits for each reply by default.
		store_platform_mail_started( microtime( true ) );
		$mailer->Timeout                        = max( 1, (int) floor( store_platform_mail_budget_left() ) );
		$mailer->getSMTPInstance()->Timelimit = $mailer->Timeout;
		// PHPMailer calls STARTTLS "tls" and TLS from the first byte "ssl".
		$mailer->SMTPSecure  = array( 'starttls' => 'tls', 'tls' => 'ssl' )[ $smtp['security'] ] ?? '';
		$mailer->SMTPAutoTLS = 'none' !== $smtp['security'];
		if ( '' !== $smtp['username'] ) {
			$mailer->SMTPAuth = true;
			$mailer->Username = $smtp['username'];
			$mailer->Password = $smtp['password'];
		}
		if ( '' !== $smtp['from'] && 0 !== strcasecmp( $mailer->From, $smtp['from'] ) ) {
			// The relay sends as the platform's address (its SPF and DKIM cover only that); replies still reach
			// whoever the mail is from: the shop owner's address WooCommerce puts there, or, for WordPress's own
			// mails (from "wordpress@<site>", where no mailbox is), the site's administrator.
			if ( ! $mailer->getReplyToAddresses() ) {
				$reply_to = 0 === stripos( $mailer->From, 'wordpress@' ) ? get_option( 'admin_email' ) : $mailer->From;
				$mailer->addReplyTo( $reply_to, $mailer->FromName );
			}
			$mailer->setFrom( $smtp['from'], $mailer->FromName, false );
		}
		if ( '' !== $smtp['from'] ) {
			$mailer->Sender = $smtp['from'];
		}
	},
	PHP_INT_MAX
);

// A relay that refuses a mail is worth a line in the container log (PHPMailer's messages carry no password).
add_action(
	'wp_mail_failed',
	static function ( $error ) {
		error_log( 'store-platform mail: not sent: ' . $error->get_error_message() );
	}
);
