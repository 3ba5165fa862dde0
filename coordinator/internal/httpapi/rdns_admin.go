package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/rdns"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
)

// Reverse zones: the operator maps reverse zones (IPv4 in-addr.arpa, IPv6
// nibble ip6.arpa) that PowerDNS serves the servers' PTR names from; an
// address belongs to the longest mapped zone that holds it. The leader's
// reconciler (coordinator/internal/server) makes PowerDNS follow.

// DecodeReverseZone validates a POST /admin/reverse-zones body; the zone is
// returned in canonical form (lower case, no trailing dot).
func DecodeReverseZone(body []byte) (api.ReverseZoneRequest, error) {
	return decodeChecked(body, func(req *api.ReverseZoneRequest) error {
		z, err := reverseZoneName("zone", req.Zone)
		if err != nil {
			return err
		}
		req.Zone = z
		if req.Pool != "" && !fsm.ValidPoolName(req.Pool) {
			return invalidField("pool", "must be an IP pool name (1-63 characters of a-z, 0-9 and '-', not starting with '-')")
		}
		return nil
	})
}

func reverseZoneName(field, s string) (string, error) {
	if s == "" {
		return "", invalidField(field, "is required")
	}
	z, err := rdns.ParseZone(s)
	if err != nil {
		return "", invalidField(field, "%s", err.Error())
	}
	return z.Name, nil
}

// reverseZones reads every stored reverse zone.
func (a *API) reverseZones() ([]store.ReverseZone, error) {
	var zs []store.ReverseZone
	err := a.state.Read(func(r store.ReadTx) (err error) { zs, err = r.ReverseZones(); return })
	return zs, err
}

// ReverseZoneAdmin adds the /admin/reverse-zones routes to an admin handler.
func (a *API) ReverseZoneAdmin(next http.Handler) http.Handler {
	mux := a.newAdminMux()
	leader := func(h adminFunc) http.Handler { return a.adminWrap(h, true) }
	mux.Handle("GET /admin/reverse-zones", leader(func(_ *http.Request, _ []byte, _ time.Time) (int, any, error) {
		out := []api.ReverseZone{}
		err := a.state.Read(func(r store.ReadTx) error {
			zs, err := r.ReverseZones()
			for _, z := range zs {
				out = append(out, fsm.ReverseZoneView(z))
			}
			return err
		})
		return http.StatusOK, out, err
	}))
	mux.Handle("POST /admin/reverse-zones", leader(func(r *http.Request, body []byte, now time.Time) (int, any, error) {
		req, err := DecodeReverseZone(body)
		if err != nil {
			return 0, nil, err
		}
		v, err := a.adminApply(r.Context(), fsm.CmdReverseZoneAdd, now, fsm.ReverseZoneAdd{Zone: req.Zone, Pool: req.Pool})
		if errors.Is(err, fsm.ErrNotFound) {
			return 0, nil, invalidField("pool", "names no IP pool (hostplanectl ip-pool list)")
		}
		if errors.Is(err, fsm.ErrInvalid) {
			return 0, nil, invalidField("pool", "%s", strings.TrimPrefix(err.Error(), fsm.ErrInvalid.Error()+": "))
		}
		if err != nil {
			return 0, nil, err
		}
		a.log.Info("reverse zone mapped", "zone", req.Zone, "pool", req.Pool)
		return http.StatusCreated, v, nil
	}))
	mux.Handle("DELETE /admin/reverse-zones/{zone}", leader(func(r *http.Request, _ []byte, now time.Time) (int, any, error) {
		name, err := reverseZoneName("zone", r.PathValue("zone"))
		if err != nil {
			return 0, nil, err
		}
		v, err := a.adminApply(r.Context(), fsm.CmdReverseZoneRemove, now, fsm.ReverseZoneRemove{Zone: name})
		if errors.Is(err, fsm.ErrNotFound) {
			return 0, nil, notFound("reverse zone")
		}
		if err != nil {
			return 0, nil, err
		}
		a.log.Info("reverse zone unmapped", "zone", name)
		return http.StatusOK, v, nil
	}))
	mux.Handle("/", next)
	return mux
}
