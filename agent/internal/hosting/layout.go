// Package hosting runs web hosting accounts on a hosting node: a Linux user with
// its home (the SFTP chroot) and docroot, a PHP-FPM pool as that user, a MariaDB
// database and user, and sites served by one nginx whose configuration does not
// change per host name (per account only: its plan's limits).
//
// # Layout on the node (Root, default /var/lib/hostplane/hosting)
//
// Every path component from / down to Root and sites/<user> must be root-owned
// and not group- or world-writable (OpenSSH's ChrootDirectory rule).
//
//	nginx/nginx.conf        the whole nginx configuration, rendered from a template
//	                        (NginxTemplate); changed only through nginx -t on a
//	                        candidate, an atomic rename, a reload (HUP) and a rollback
//	                        to the previous file if the reload fails
//	nginx/site.conf         the per-request site logic (root, suspension, PHP),
//	                        included by the HTTP server block and by any TLS server
//	                        block: a site is the same on :80 and :443. It holds one
//	                        named location per account (@hp_php_<user>: its plan's
//	                        upload limit and read timeout), chosen by the account
//	                        hosts/<host> points at: rendered from the accounts'
//	                        records on start and on an account's create or delete
//	                        (one reload), never per host name
//	nginx/tls.d/*.conf      HOOK: files included at http{} level; the TLS server
//	                        block (listen :443 ssl, per-SNI certificate) goes here.
//	                        It includes nginx/site.conf after its ssl_* lines.
//	nginx/main.d/*.conf     HOOK: files included at the top level (load_module)
//	nginx/http.d/*.conf     HOOK: files included inside the HTTP (:80) server block
//	                        before the site logic (e.g. the ACME HTTP-01 location).
//	nginx/pages/            fixed pages (suspended.html)
//	nginx/logs              nginx's logs, root:<the workers' group> 0710 (every
//	                        site's requests and PHP messages; a site's PHP runs
//	                        commands as its account, which is not in that group);
//	                        rotated by the packages' /etc/logrotate.d/hostplane-agent
//	                        (create, then `hostplane-agent hosting reopen-logs`:
//	                        USR1, ReopenLogs; the workers reopen their logs by
//	                        name, which the group's search permission allows)
//	nginx/tmp               nginx's temp paths; nginx/nginx.pid
//	hosts/<host>            symlink → ../sites/<user>: the host name routes to the
//	                        account. <host> is always a validated lower-case DNS
//	                        name (validate.Domain); nginx maps $host through
//	                        the same rule (a regex map) before using it in a path,
//	                        so a Host of "../x", "A.TEST" or junk never reaches the
//	                        file system (421). Attaching a host is a symlink written
//	                        under a temporary name and renamed over: no reload.
//	sites/<user>/           root:root 0755, the account's home and SFTP chroot; where
//	                        sites/ is on btrfs with quotas, a subvolume limited to
//	                        the plan's disk allowance (quota.go)
//	sites/<user>/public     <user>:www-data 2750, the docroot (nginx reads through
//	                        the group; SFTP uploads with umask 027 keep the group)
//	sites/<user>/private    <user> 0700, outside the docroot (PHP may use it)
//	sites/<user>/tmp        <user> 0700, PHP uploads and sessions
//	sites/<user>/run        root:www-data 0750, php-fpm.sock (the pool's socket,
//	                        <user>:www-data 0660); in a site subvolume, a
//	                        subvolume of its own, outside the limit
//	sites/<user>/suspended  present while the account is suspended (nginx answers
//	                        503 with nginx/pages/suspended.html)
//	fpm/<version>/          one php-fpm master per PHP version: php-fpm.conf,
//	                        pool.d/<user>.conf, php-fpm.pid, error.log; root 0700
//	accounts/<user>.json    the account as the node knows it (domain, plan, PHP
//	                        version, suspended), root 0600
//	certs/                  HOOK: certificates of the TLS block (owned by the TLS
//	                        part); delete removes certs/<host>.pem of the account's hosts
//	deleted-qgroups         the qgroups (0/<id>) of the site subvolumes deleted whose
//	                        qgroup the sweep has not destroyed yet (quota.go), root 0600
//	ssh/sftp.conf           the sshd Match block for the SFTP group (include it from
//	                        sshd_config, or start sshd on it as the tests do)
//
// Symlinks a customer uploads are not followed to files of another owner
// (disable_symlinks if_not_owner from the docroot).
package hosting

import (
	"path/filepath"
)

// Layout names the paths under the hosting root.
type Layout struct{ Root string }

// NginxDir holds nginx.conf and the hook directories.
func (l Layout) NginxDir() string { return filepath.Join(l.Root, "nginx") }

// NginxConf is the nginx configuration file.
func (l Layout) NginxConf() string { return filepath.Join(l.Root, "nginx", "nginx.conf") }

// NginxPID is nginx's pid file.
func (l Layout) NginxPID() string { return filepath.Join(l.Root, "nginx", "nginx.pid") }

// SiteConf is the per-request site logic shared by the HTTP and TLS servers.
func (l Layout) SiteConf() string { return filepath.Join(l.Root, "nginx", "site.conf") }

// TLSDir holds http{}-level includes: the TLS server block's hook.
func (l Layout) TLSDir() string { return filepath.Join(l.Root, "nginx", "tls.d") }

// MainDir holds top-level includes (load_module): the TLS part's hook.
func (l Layout) MainDir() string { return filepath.Join(l.Root, "nginx", "main.d") }

// HTTPDir holds includes of the HTTP server block.
func (l Layout) HTTPDir() string { return filepath.Join(l.Root, "nginx", "http.d") }

// HostsDir holds one symlink per host name.
func (l Layout) HostsDir() string { return filepath.Join(l.Root, "hosts") }

// Host is the symlink of a host name.
func (l Layout) Host(host string) string { return filepath.Join(l.Root, "hosts", host) }

// CertsDir is where the TLS part keeps certificates.
func (l Layout) CertsDir() string { return filepath.Join(l.Root, "certs") }

// Site is an account's home (its SFTP chroot).
func (l Layout) Site(user string) string { return filepath.Join(l.Root, "sites", user) }

// Docroot is an account's public directory.
func (l Layout) Docroot(user string) string { return filepath.Join(l.Site(user), "public") }

// Socket is the account's PHP-FPM socket.
func (l Layout) Socket(user string) string { return filepath.Join(l.Site(user), "run", "php-fpm.sock") }

// FPMDir holds the master of one PHP version.
func (l Layout) FPMDir(version string) string { return filepath.Join(l.Root, "fpm", version) }

// Account is the node's record of an account.
func (l Layout) Account(user string) string { return filepath.Join(l.Root, "accounts", user+".json") }

// DeletedQgroups lists the qgroups of deleted site subvolumes not destroyed yet.
func (l Layout) DeletedQgroups() string { return filepath.Join(l.Root, "deleted-qgroups") }

// SFTPConf is the sshd Match block.
func (l Layout) SFTPConf() string { return filepath.Join(l.Root, "ssh", "sftp.conf") }
