package fsm

import (
	"errors"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// TestOAuthCommandsUseCommandTime: every OAuth expiry is computed from and
// compared with the command's time, never the clock (t0 is far from now),
// and two replicas applying the same entries end with the same state.
func TestOAuthCommandsUseCommandTime(t *testing.T) {
	dir := t.TempDir()
	replicas := []*FSM{open(t, filepath.Join(dir, "a.db")), open(t, filepath.Join(dir, "b.db"))}
	defer replicas[0].Close()
	defer replicas[1].Close()
	var idx uint64
	apply := func(at time.Time, typ CommandType, p any) (any, error) {
		t.Helper()
		idx++
		l := logAt(t, idx, typ, at, p)
		var out []*Result
		for _, f := range replicas {
			out = append(out, f.Apply(l).(*Result))
		}
		if !reflect.DeepEqual(out[0].Value, out[1].Value) || (out[0].Err == nil) != (out[1].Err == nil) {
			t.Fatalf("replicas disagree on %d: %#v / %#v", typ, out[0], out[1])
		}
		return out[0].Value, out[0].Err
	}
	code := func(err error) string {
		var oe *OAuthError
		if errors.As(err, &oe) {
			return oe.Code
		}
		return ""
	}
	issue := func(grant, n string) OAuthIssue {
		return OAuthIssue{GrantID: grant, AccessHash: "at" + n, RefreshHash: "rt" + n, AccessTTL: time.Hour, RefreshTTL: 90 * 24 * time.Hour}
	}
	if _, err := apply(t0, CmdAccountCreate, AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "A", Country: "TR"}); err != nil {
		t.Fatal(err)
	}
	// Device: pending until decided, expired 10 minutes after its command.
	start := OAuthDeviceStart{OAuthDeviceRequest: store.OAuthDeviceRequest{ID: "dev_1", DeviceHash: "dh1", UserCodeHash: "uh1", ClientID: "hpc_1", ClientName: "CLI", Scopes: []string{"account:read"}, Resource: "https://api", Interval: 5}, TTL: 10 * time.Minute}
	if _, err := apply(t0, CmdOAuthDeviceStart, start); err != nil {
		t.Fatal(err)
	}
	if _, err := apply(t0.Add(time.Minute), CmdOAuthDeviceRedeem, OAuthDeviceRedeem{DeviceHash: "dh1", ClientID: "hpc_1", Issue: issue("app_1", "1")}); code(err) != "authorization_pending" {
		t.Fatalf("redeem before approval: %v", err)
	}
	if _, err := apply(t0.Add(2*time.Minute), CmdOAuthDeviceDecide, OAuthDeviceDecide{UserCodeHash: "uh1", Approve: true, AccountID: "acc_1", Scopes: []string{"account:read"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := apply(t0.Add(10*time.Minute), CmdOAuthDeviceRedeem, OAuthDeviceRedeem{DeviceHash: "dh1", ClientID: "hpc_1", Issue: issue("app_1", "1")}); code(err) != "expired_token" {
		t.Fatalf("redeem at expiry: %v, want expired_token", err)
	}
	v, err := apply(t0.Add(9*time.Minute), CmdOAuthDeviceRedeem, OAuthDeviceRedeem{DeviceHash: "dh1", ClientID: "hpc_1", Issue: issue("app_1", "1")})
	if err != nil {
		t.Fatalf("redeem within the lifetime by command time (the clock is %v later): %v", time.Since(t0).Round(time.Hour), err)
	}
	if is := v.(OAuthIssued); !is.AccessExpiresAt.Equal(t0.Add(9*time.Minute + time.Hour)) {
		t.Fatalf("access expiry %v, want command time + 1h", is.AccessExpiresAt)
	}
	// Refresh rotates; reuse revokes the grant (a committed change returned as the value).
	if _, err := apply(t0.Add(20*time.Minute), CmdOAuthRefresh, OAuthRefresh{RefreshHash: "rt1", ClientID: "hpc_1", Issue: issue("", "2")}); err != nil {
		t.Fatal(err)
	}
	v, err = apply(t0.Add(21*time.Minute), CmdOAuthRefresh, OAuthRefresh{RefreshHash: "rt1", ClientID: "hpc_1", Issue: issue("", "3")})
	if oe, ok := v.(*OAuthError); err != nil || !ok || oe.Code != "invalid_grant" {
		t.Fatalf("reuse: %#v %v", v, err)
	}
	for _, f := range replicas {
		_ = f.Read(func(r store.ReadTx) error {
			g, err := r.OAuthGrant("app_1")
			if err != nil || g.RevokedAt == nil || !g.RevokedAt.Equal(t0.Add(21*time.Minute)) || len(r.OAuthGrantTokens("app_1")) != 0 {
				t.Errorf("after reuse: grant %+v %v, tokens %v", g, err, r.OAuthGrantTokens("app_1"))
			}
			if apps, _ := r.ConnectedApps("acc_1"); len(apps) != 0 {
				t.Errorf("revoked grant still listed: %+v", apps)
			}
			return nil
		})
	}
	// Codes: 5 minutes from their command; the challenge must match.
	cc := OAuthCodeCreate{CodeHash: "ch1", OAuthCodeApproval: store.OAuthCodeApproval{ClientID: "hpc_2", ClientName: "App", RedirectURI: "https://a/cb", Challenge: "C", AccountID: "acc_1", Scopes: []string{"account:read"}, Resource: "https://api/mcp"}, TTL: 5 * time.Minute}
	if _, err := apply(t0.Add(time.Hour), CmdOAuthCodeCreate, cc); err != nil {
		t.Fatal(err)
	}
	redeem := OAuthCodeRedeem{CodeHash: "ch1", ClientID: "hpc_2", RedirectURI: "https://a/cb", Challenge: "C", Issue: issue("app_2", "4")}
	wrong := redeem
	wrong.Challenge = "D"
	if _, err := apply(t0.Add(time.Hour+time.Minute), CmdOAuthCodeRedeem, wrong); code(err) != "invalid_grant" {
		t.Fatalf("wrong challenge: %v", err)
	}
	late := redeem
	if _, err := apply(t0.Add(time.Hour+5*time.Minute), CmdOAuthCodeRedeem, late); code(err) != "invalid_grant" {
		t.Fatalf("at expiry: %v", err)
	}
	if v, err := apply(t0.Add(time.Hour+4*time.Minute), CmdOAuthCodeRedeem, redeem); err != nil || v.(OAuthIssued).Resource != "https://api/mcp" {
		t.Fatalf("in time: %#v %v", v, err)
	}
	var apps []api.ConnectedApp
	_ = replicas[1].Read(func(r store.ReadTx) (err error) { apps, err = r.ConnectedApps("acc_1"); return })
	if len(apps) != 1 || apps[0].ID != "app_2" || apps[0].GrantType != api.GrantAuthorizationCode {
		t.Fatalf("connected apps: %+v", apps)
	}
	// The sweep removes what expired by its command's time: nothing an hour
	// after app_2's tokens were issued minus a second, the access token at the hour,
	// everything (and the emptied grant) after the refresh token's 90 days.
	issued := t0.Add(time.Hour + 4*time.Minute)
	for _, c := range []struct {
		at             time.Time
		tokens, grants int
	}{{issued.Add(time.Hour - time.Second), 0, 0}, {issued.Add(time.Hour), 1, 0}, {issued.Add(90 * 24 * time.Hour), 1, 1}} {
		v, err := apply(c.at, CmdOAuthSweep, OAuthSweep{Limit: 100})
		if n := v.(map[string]int); err != nil || n["tokens"] < c.tokens || n["grants"] != c.grants {
			t.Fatalf("sweep at %v: %v %v, want %d tokens %d grants", c.at.Sub(issued), v, err, c.tokens, c.grants)
		}
	}
	_ = replicas[0].Read(func(r store.ReadTx) (err error) { apps, err = r.ConnectedApps("acc_1"); return })
	if len(apps) != 0 {
		t.Fatalf("connected apps after every token expired: %+v", apps)
	}
}

// TestOAuthSweepForgetsUnusedClients: with ClientsUnusedBefore, the sweep
// removes registered clients created before it that nothing names — no
// grant (live or revoked), device authorization or code — and keeps the
// others; a sweep without it (every entry written before it existed)
// removes no client.
func TestOAuthSweepForgetsUnusedClients(t *testing.T) {
	f := open(t, filepath.Join(t.TempDir(), "a.db"))
	defer f.Close()
	var idx uint64
	apply := func(at time.Time, typ CommandType, p any) any {
		t.Helper()
		idx++
		res := f.Apply(logAt(t, idx, typ, at, p)).(*Result)
		if res.Err != nil {
			t.Fatalf("command %d: %v", typ, res.Err)
		}
		return res.Value
	}
	apply(t0, CmdAccountCreate, AccountCreate{ID: "acc_1", Email: "a@x.io", Name: "A", Country: "TR"})
	for _, id := range []string{"hpc_idle", "hpc_code", "hpc_device", "hpc_app", "hpc_revoked"} {
		apply(t0, CmdOAuthClientRegister, OAuthClientRegister{Client: store.OAuthClient{ID: id, Name: id, RedirectURIs: []string{"https://a/cb"}}})
	}
	apply(t0.Add(48*time.Hour), CmdOAuthClientRegister, OAuthClientRegister{Client: store.OAuthClient{ID: "hpc_new", Name: "new"}})
	code := func(client, hash, grant string) {
		apply(t0.Add(time.Hour), CmdOAuthCodeCreate, OAuthCodeCreate{CodeHash: hash, OAuthCodeApproval: store.OAuthCodeApproval{ClientID: client, ClientName: client, RedirectURI: "https://a/cb", Challenge: "C", AccountID: "acc_1", Scopes: []string{"account:read"}, Resource: "https://api"}, TTL: 5 * time.Minute})
		if grant != "" {
			apply(t0.Add(time.Hour+time.Minute), CmdOAuthCodeRedeem, OAuthCodeRedeem{CodeHash: hash, ClientID: client, RedirectURI: "https://a/cb", Challenge: "C",
				Issue: OAuthIssue{GrantID: grant, AccessHash: "at" + grant, RefreshHash: "rt" + grant, AccessTTL: time.Hour, RefreshTTL: 90 * 24 * time.Hour}})
		}
	}
	code("hpc_code", "ch_code", "")
	code("hpc_app", "ch_app", "app_1")
	code("hpc_revoked", "ch_revoked", "app_2")
	apply(t0.Add(2*time.Hour), CmdOAuthRevoke, OAuthRevoke{GrantID: "app_2", AccountID: "acc_1"})
	apply(t0.Add(time.Hour), CmdOAuthDeviceStart, OAuthDeviceStart{OAuthDeviceRequest: store.OAuthDeviceRequest{ID: "dev_1", DeviceHash: "dh1", UserCodeHash: "uh1", ClientID: "hpc_device", ClientName: "CLI", Scopes: []string{"account:read"}, Resource: "https://api", Interval: 5}, TTL: 10 * time.Minute})

	clients := func() (ids []string) {
		_ = f.Read(func(r store.ReadTx) error {
			for _, id := range []string{"hpc_idle", "hpc_code", "hpc_device", "hpc_app", "hpc_revoked", "hpc_new"} {
				if r.OAuthClientExists(id) {
					ids = append(ids, id)
				}
			}
			return nil
		})
		return ids
	}
	all := clients()
	at := t0.Add(49 * time.Hour)
	if v := apply(at, CmdOAuthSweep, OAuthSweep{Limit: 100}).(map[string]int); v["clients"] != 0 || !reflect.DeepEqual(clients(), all) {
		t.Fatalf("a sweep without ClientsUnusedBefore: %v, clients %v, want all of %v", v, clients(), all)
	}
	v := apply(at, CmdOAuthSweep, OAuthSweep{Limit: 100, ClientsUnusedBefore: at.Add(-24 * time.Hour)}).(map[string]int)
	want := []string{"hpc_code", "hpc_device", "hpc_app", "hpc_revoked", "hpc_new"}
	if v["clients"] != 1 || !reflect.DeepEqual(clients(), want) {
		t.Fatalf("sweep: %v, clients left %v, want %v", v, clients(), want)
	}
}
