package store

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hostplane/hostplane/internal/plainjson/codectest"
	"github.com/hostplane/hostplane/pkg/api"
)

// checkAccountCodec: EncodeAccount writes json.Marshal's bytes whenever it
// writes, and readAccount reads what json.Unmarshal reads whenever it
// reads, both what json.Marshal wrote and raw as it is.
func checkAccountCodec(t testing.TB, acc api.Account, raw []byte) (encoded, read bool) {
	t.Helper()
	encoded = codectest.Encoding(t, "EncodeAccount", EncodeAccount, acc)
	if b, err := json.Marshal(acc); err == nil {
		read = codectest.Reading(t, "readAccount", readAccount, b)
	}
	codectest.Reading(t, "readAccount", readAccount, raw)
	return encoded, read
}

func TestAccountCodecMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 1, 17, 4, 5, 123456000, time.UTC)
	plain := api.Account{ID: "acc_1", Email: "a@example.com", Name: "A B", Country: "TR", EmailVerified: true, CreatedAt: at, BalanceUsdCents: -12}
	for _, acc := range []api.Account{plain, {}, {ID: "acc_2", CreatedAt: at, BalanceUsdCents: 1 << 62}} {
		if enc, read := checkAccountCodec(t, acc, nil); !enc || !read {
			t.Errorf("a plain UTC account took the slow path (encoded %v, read %v): %+v", enc, read, acc)
		}
	}
	// Left to encoding/json: a name it escapes (written by the fast
	// encoder, read by encoding/json), another zone, keys out of order,
	// whitespace, a float.
	odd := plain
	odd.Name = `<Ça "ğ"> \ ` + "\u2028\xff"
	if enc, read := checkAccountCodec(t, odd, nil); !enc || read {
		t.Errorf("account with an escaped name: encoded %v (want true), read %v (want false)", enc, read)
	}
	zoned := plain
	zoned.CreatedAt = at.In(time.FixedZone("x", 3600))
	if enc, _ := checkAccountCodec(t, zoned, nil); enc {
		t.Error("an account created in another zone was encoded")
	}
	codectest.Paths(t, "account record", func(raw string) bool { return codectest.Reading(t, "readAccount", readAccount, []byte(raw)) }, nil, []string{
		`{"email":"a","id":"b"}`, `{"id": "a"}`, `{"id":"a","balance_usd_cents":1.0}`, `{"ID":"a"}`,
		`{"id":"a","balance_usd_cents":99999999999999999999}`, `{"id":"a"}x`, `null`,
	})
}

func FuzzAccountCodec(f *testing.F) {
	f.Add("acc_1", "a@example.com", "A B", "TR", true, int64(1764608645123456000), int64(1200), []byte(`{"id":"acc_1","balance_usd_cents":-0}`))
	f.Add("<\"\\", "\xff\u2028", "Ça", "", false, int64(-62135596800000000), int64(-1), []byte(`{"id":"a","email":"b","name":"c","country":"d","email_verified":false,"created_at":"2026-01-01T00:00:00+01:00","balance_usd_cents":5}`))
	f.Fuzz(func(t *testing.T, id, email, name, country string, verified bool, nanos, cents int64, raw []byte) {
		acc := api.Account{ID: id, Email: email, Name: name, Country: country, EmailVerified: verified, CreatedAt: time.Unix(0, nanos).UTC(), BalanceUsdCents: cents}
		checkAccountCodec(t, acc, raw)
	})
}

func TestWalletTxEncodingMatchesEncodingJSON(t *testing.T) {
	at := time.Date(2026, 12, 1, 17, 4, 5, 123456000, time.UTC)
	pay := api.WalletTransaction{ID: "wtx_1", Type: api.TxInvoicePayment, AmountUsdCents: -1200, BalanceAfterUsdCents: 800,
		Description: "payment of invoice INV-2026-000001", InvoiceID: "inv_1", CreatedAt: at}
	dep := api.WalletTransaction{ID: "wtx_2", Type: api.TxDeposit, AmountUsdCents: 5000, Description: `<card> "x" & ü`, Gateway: "stripe", CreatedAt: at}
	late := pay
	late.CreatedAt = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	codectest.Paths(t, "wallet transaction", func(w api.WalletTransaction) bool { return codectest.Encoding(t, "EncodeWalletTx", EncodeWalletTx, w) },
		[]api.WalletTransaction{pay, dep, {}}, // UTC times
		[]api.WalletTransaction{late})         // year 10000
}

func FuzzEncodeWalletTx(f *testing.F) {
	f.Add("wtx_1", "invoice_payment", int64(-1200), int64(800), "payment of invoice INV-2026-000001", "", "inv_1", int64(1764608645123456000))
	f.Add("<\"\\", "\xff\u2028", int64(0), int64(-1), "", "g", "", int64(-62135596800000000))
	f.Fuzz(func(t *testing.T, id, typ string, amount, after int64, desc, gateway, invoiceID string, nanos int64) {
		w := api.WalletTransaction{ID: id, Type: typ, AmountUsdCents: amount, BalanceAfterUsdCents: after, Description: desc,
			Gateway: gateway, InvoiceID: invoiceID, CreatedAt: time.Unix(0, nanos).UTC()}
		codectest.Encoding(t, "EncodeWalletTx", EncodeWalletTx, w)
	})
}
