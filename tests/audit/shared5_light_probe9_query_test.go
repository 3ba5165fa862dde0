package audit

import (
	"encoding/json"
	"net/url"
	"slices"
	"sort"
	"strings"
	"testing"
)

// TestProbe9QueryRules: one rule for the query string of every list route
// /openapi.json lists (each GET that takes limit), through the leader and a
// follower, as a client filling a URL template would meet it (README: "Query
// parameters are those the operation lists in /openapi.json … any other name,
// one in another case, one given twice or a query that does not parse is a
// 400 invalid_query naming it"):
//   - a parameter it takes, given empty (?limit=, ?page=, ?cursor=,
//     ?consistency=, an empty filter), is as if it were not given: the
//     default page and consistency, no filter;
//   - limit outside 1–200 (0, negative, huge, not an integer), page below 1,
//     any parameter given twice (empty ones too), a name not listed or in
//     another case is a 400 invalid_query naming it;
//   - a cursor that is no action (an id of another list) is a 400 naming it;
//     an action id that is not the caller's a 404 naming it.
//
// Before, ?limit= and ?cursor= were the defaults while ?consistency= (and
// the action list's ?status=, ?resource_type=, ?command=, ?resource_id=) was a
// 400: the same template answered or refused by the parameter's name.
func TestProbe9QueryRules(t *testing.T) {
	r := sharedLightRig(t, "light")
	f := r.follower()
	// Ids for the lists under one: a webhook (its deliveries), the key's
	// own id (its usage log); a ticket whose id is a cursor of no list.
	wh := r.hook(r.keyA, newReceiver(t).URL, "ticket.created")
	tk := r.ticket(0, r.keyA, "probe9 query")
	var keys struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	r.get(t, 0, r.keyA, "/v1/account/api-keys", &keys)
	if len(keys.Data) == 0 {
		t.Fatal("no key listed")
	}
	fill := strings.NewReplacer("/webhooks/{id}/", "/webhooks/"+wh.ID+"/", "/api-keys/{id}/", "/api-keys/"+keys.Data[0].ID+"/")
	var lists []string
	takes := map[string][]string{}
	type param struct {
		Ref        string `json:"$ref"`
		Name       string `json:"name"`
		In         string `json:"in"`
		Required   bool   `json:"required"`
		AllowEmpty bool   `json:"allowEmptyValue"`
	}
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Parameters map[string]param `json:"parameters"`
		} `json:"components"`
	}
	r.apis[0].Call("", "GET", "/openapi.json", nil, nil).Decode(t, &doc)
	for p, item := range doc.Paths {
		if item["get"] == nil {
			continue
		}
		var shared []param
		var get struct {
			Parameters []param `json:"parameters"`
		}
		if item["parameters"] != nil {
			if err := json.Unmarshal(item["parameters"], &shared); err != nil {
				t.Fatalf("%s parameters: %v", p, err)
			}
		}
		if err := json.Unmarshal(item["get"], &get); err != nil {
			t.Fatalf("GET %s: %v", p, err)
		}
		var names []string
		for _, prm := range append(shared, get.Parameters...) {
			if prm.Ref != "" {
				prm = doc.Components.Parameters[prm.Ref[strings.LastIndex(prm.Ref, "/")+1:]]
			}
			if prm.In == "query" {
				names = append(names, prm.Name)
				// The document says so too (OpenAPI 3.0.3 allowEmptyValue),
				// for a client or a generator that reads it.
				if !prm.Required && !prm.AllowEmpty {
					t.Errorf("GET %s: query parameter %q in /openapi.json without allowEmptyValue: true", p, prm.Name)
				}
			}
		}
		if slices.Contains(names, "limit") {
			path := "/v1" + fill.Replace(p)
			lists = append(lists, path)
			takes[path] = names
		}
	}
	sort.Strings(lists)
	if len(lists) < 8 {
		t.Fatalf("only %d list routes in /openapi.json: %v", len(lists), lists)
	}
	for _, path := range lists {
		if rep := r.call(0, r.keyA, "GET", path, nil, nil); rep.Status != 200 {
			t.Errorf("%s", rep)
			continue
		}
		paged := slices.Contains(takes[path], "page")
		type tc struct {
			query  string
			status int
			name   string // the parameter a 400 or 404 names
			limit  int    // the limit a 200 echoes
		}
		cases := []tc{
			{"", 200, "", 50}, {"limit=", 200, "", 50}, {"consistency=", 200, "", 50}, {"limit=&consistency=", 200, "", 50},
			{"limit=1", 200, "", 1}, {"limit=200", 200, "", 200}, {"consistency=stale&limit=7", 200, "", 7},
			{"limit=0", 400, "limit", 0}, {"limit=-1", 400, "limit", 0}, {"limit=201", 400, "limit", 0},
			{"limit=99999999999999999999", 400, "limit", 0}, {"limit=1e2", 400, "limit", 0}, {"limit=2.0", 400, "limit", 0},
			{"limit=" + url.QueryEscape(" 5"), 400, "limit", 0}, {"limit=five", 400, "limit", 0},
			{"limit=5&limit=5", 400, "limit", 0}, {"limit=&limit=", 400, "limit", 0}, {"consistency=&consistency=", 400, "consistency", 0},
			{"consistency=eventual", 400, "consistency", 0},
			{"Limit=5", 400, "Limit", 0}, {"foo=", 400, "foo", 0}, {"foo=1", 400, "foo", 0}, {"sort=-created_at", 400, "sort", 0},
		}
		if paged {
			cases = append(cases, tc{"page=", 200, "", 50}, tc{"page=&limit=", 200, "", 50}, tc{"page=1&limit=3", 200, "", 3},
				tc{"page=0", 400, "page", 0}, tc{"page=-1", 400, "page", 0}, tc{"page=x", 400, "page", 0}, tc{"page=1&page=2", 400, "page", 0})
			if slices.Contains(takes[path], "cursor") {
				// Lists paged by number that also walk by cursor (723d3f4):
				// an empty cursor is the first page; an id of another
				// list's kind, or a repeated cursor, is a 400 naming it.
				cases = append(cases, tc{"cursor=", 200, "", 50}, tc{"cursor=&page=&limit=", 200, "", 50},
					tc{"cursor=act_01m91hyg0g01mmrv21kv025ywc", 400, "cursor", 0}, tc{"cursor=x&cursor=y", 400, "cursor", 0})
			} else {
				cases = append(cases, tc{"cursor=", 400, "cursor", 0}, tc{"cursor=" + tk.ID, 400, "cursor", 0})
			}
		} else {
			cases = append(cases, tc{"cursor=", 200, "", 50}, tc{"cursor=&limit=", 200, "", 50},
				tc{"status=&resource_type=&command=&resource_id=", 200, "", 50},
				tc{"cursor=" + tk.ID, 400, "cursor", 0}, tc{"cursor=" + wh.ID, 400, "cursor", 0},
				tc{"cursor=act_01m91hyg0g01mmrv21kv025ywc", 404, "cursor", 0},
				tc{"page=", 400, "page", 0}, tc{"page=1", 400, "page", 0}, tc{"status=&status=", 400, "status", 0})
		}
		for _, c := range cases {
			for _, i := range []int{0, f} {
				target := path
				if c.query != "" {
					target += "?" + c.query
				}
				rep := r.call(i, r.keyA, "GET", target, nil, nil)
				what := "GET " + target + " on coordinator " + string(rune('0'+i))
				if rep.Status != c.status {
					t.Errorf("%s: %s; want %d %s", what, rep, c.status, c.name)
					continue
				}
				if c.status == 200 {
					var page struct {
						Limit int `json:"limit"`
					}
					if err := json.Unmarshal(rep.Body, &page); err != nil || page.Limit != c.limit {
						t.Errorf("%s: limit %d (%v); want %d", what, page.Limit, err, c.limit)
					}
					continue
				}
				e := rep.DecodeError(t)
				code := "invalid_query"
				if c.status == 404 {
					code = "not_found"
				}
				if e.Code != code || !strings.Contains(e.Message, `"`+c.name+`"`) {
					t.Errorf("%s: %s; want %d %s naming %q", what, rep, c.status, code, c.name)
				}
			}
		}
	}
	// A read that is no list takes consistency alone: given empty, the default.
	for _, q := range []struct {
		query  string
		status int
	}{{"consistency=", 200}, {"consistency=linearizable", 200}, {"limit=", 400}, {"limit=5", 400}, {"page=1", 400}} {
		for _, i := range []int{0, f} {
			if rep := r.call(i, r.keyA, "GET", "/v1/account?"+q.query, nil, nil); rep.Status != q.status {
				t.Errorf("GET /v1/account?%s on coordinator %d: %s; want %d", q.query, i, rep, q.status)
			}
		}
	}
}
