package httpapi

import (
	"context"
	"net/url"
)

func contextWith(ctx context.Context, u *url.URL) context.Context {
	return context.WithValue(ctx, ctxLeaderURL{}, u)
}
