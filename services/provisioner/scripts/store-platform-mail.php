<?php
/**
 * Plugin Name: store-platform mail
 * Description: Sends this store's mail through the platform's SMTP relay. Without a relay, mail is off: nothing is sent, and nothing calls a sendmail the image does not have.
 *
 * A must-use plugin the platform installs into wp-content/mu-plugins on every start of the store (its edits are
 * overwritten). The relay's settings come from the environment the platform gives WordPress and the bootstrap Job:
 * STORE_SMTP_HOST (empty: mail off), STORE_SMTP_PORT, STORE_SMTP_SECURITY (starttls, tls or none),
 * STORE_SMTP_USERNAME, STORE_SMTP_PASSWORD (from the store's Secret) and STORE_SMTP_FROM.
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

add_action(
	'phpmailer_init',
	static function ( $mailer ) {
		$smtp = store_platform_smtp();
		$mailer->isSMTP();
		$mailer->Host    = $smtp['host'];
		$mailer->Port    = $smtp['port'];
		// A relay that accepts the connection and then says nothing must cost a checkout seconds, not the
		// 5 minutes PHPMailer waits for each reply by default.
		$mailer->Timeout                        = 15;
		$mailer->getSMTPInstance()->Timelimit = 15;
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
