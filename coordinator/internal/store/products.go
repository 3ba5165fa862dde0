package store

import (
	"encoding/json"
	"fmt"

	"github.com/hostplane/hostplane/pkg/api"
)

// Products lists the catalogue in slug order, retired products included.
func (r ReadTx) Products() ([]api.AdminProduct, error) {
	out := []api.AdminProduct{}
	err := r.tx.Bucket(BucketProducts).ForEach(func(k, v []byte) error {
		var p api.AdminProduct
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("decode product %s: %w", k, err)
		}
		out = append(out, p)
		return nil
	})
	return out, err
}

// Product is one product by slug (ErrNotFound).
func (r ReadTx) Product(slug string) (api.AdminProduct, error) {
	return getRead(r.tx, BucketProducts, []byte(slug), readProduct)
}

// AccountPricing is an account's reseller pricing (the zero value: retail).
func (r ReadTx) AccountPricing(accountID string) (api.AccountPricing, error) {
	p, err := getRead(r.tx, BucketAccountPricing, []byte(accountID), readAccountPricing)
	if err == ErrNotFound {
		return api.AccountPricing{}, nil
	}
	return p, err
}

// OSTemplateLabels lists the operators' template labels in name order.
func (r ReadTx) OSTemplateLabels() ([]api.OSTemplateLabel, error) {
	out, err := all[api.OSTemplateLabel](r, BucketOSTemplates)
	if out == nil {
		out = []api.OSTemplateLabel{}
	}
	return out, err
}

// OSTemplateLabel is one template's label (ErrNotFound).
func (r ReadTx) OSTemplateLabel(name string) (api.OSTemplateLabel, error) {
	var l api.OSTemplateLabel
	err := GetJSON(r.tx, BucketOSTemplates, []byte(name), &l)
	return l, err
}
