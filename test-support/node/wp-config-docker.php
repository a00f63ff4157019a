<?php
// wp-config.php for the test node's WordPress image, written for this project: every setting from the environment,
// as the official image's wp-config-docker.php reads it. Its entrypoint replaces each placeholder salt.
function store_platform_env($name, $default) {
	$value = getenv($name);
	return $value === false ? $default : $value;
}

define('DB_NAME', store_platform_env('WORDPRESS_DB_NAME', 'wordpress'));
define('DB_USER', store_platform_env('WORDPRESS_DB_USER', 'example username'));
define('DB_PASSWORD', store_platform_env('WORDPRESS_DB_PASSWORD', 'example password'));
define('DB_HOST', store_platform_env('WORDPRESS_DB_HOST', 'mysql'));
define('DB_CHARSET', store_platform_env('WORDPRESS_DB_CHARSET', 'utf8mb4'));
define('DB_COLLATE', store_platform_env('WORDPRESS_DB_COLLATE', ''));

define('AUTH_KEY', store_platform_env('WORDPRESS_AUTH_KEY', 'put your unique phrase here'));
define('SECURE_AUTH_KEY', store_platform_env('WORDPRESS_SECURE_AUTH_KEY', 'put your unique phrase here'));
define('LOGGED_IN_KEY', store_platform_env('WORDPRESS_LOGGED_IN_KEY', 'put your unique phrase here'));
define('NONCE_KEY', store_platform_env('WORDPRESS_NONCE_KEY', 'put your unique phrase here'));
define('AUTH_SALT', store_platform_env('WORDPRESS_AUTH_SALT', 'put your unique phrase here'));
define('SECURE_AUTH_SALT', store_platform_env('WORDPRESS_SECURE_AUTH_SALT', 'put your unique phrase here'));
define('LOGGED_IN_SALT', store_platform_env('WORDPRESS_LOGGED_IN_SALT', 'put your unique phrase here'));
define('NONCE_SALT', store_platform_env('WORDPRESS_NONCE_SALT', 'put your unique phrase here'));

$table_prefix = store_platform_env('WORDPRESS_TABLE_PREFIX', 'wp_');
define('WP_DEBUG', (bool) store_platform_env('WORDPRESS_DEBUG', ''));

// Behind a proxy that terminates TLS.
if (isset($_SERVER['HTTP_X_FORWARDED_PROTO']) && strpos($_SERVER['HTTP_X_FORWARDED_PROTO'], 'https') !== false) {
	$_SERVER['HTTPS'] = 'on';
}

$store_platform_extra = store_platform_env('WORDPRESS_CONFIG_EXTRA', '');
if ($store_platform_extra !== '') {
	eval($store_platform_extra);
}

if (!defined('ABSPATH')) {
	define('ABSPATH', __DIR__ . '/');
}
require_once ABSPATH . 'wp-settings.php';
