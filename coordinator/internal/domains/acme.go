package domains

import (
	"context"
	"errors"
	"fmt"

	"github.com/hostplane/hostplane/coordinator/internal/fsm"
	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/coordinator/internal/webhook"
	"github.com/hostplane/hostplane/internal/certissue"
)

// acmeSealID is the associated data the account key is sealed under (a
// sealed webhook secret cannot be passed off as it, nor it as one).
const acmeSealID = "acme-account"

// AccountState is what ClusterAccount needs of the replicated state: a read
// of the account record and a proposal through Raft.
type AccountState interface {
	ACMEAccount() (store.ACMEAccount, error)
	Propose(ctx context.Context, t fsm.CommandType, payload any) error
}

// ClusterAccount returns the cluster's one ACME account with its key opened
// (in memory only), creating it on first use: the key is made here, sealed
// under the KEK and recorded through Raft before any ACME call, so every
// leader, after any failover, uses the same account. When two leaders race,
// the first record wins and the loser reads it back.
func ClusterAccount(ctx context.Context, st AccountState, sealer *webhook.Sealer, directory, email string) (certissue.Account, error) {
	rec, err := st.ACMEAccount()
	if errors.Is(err, store.ErrNotFound) {
		key, err := certissue.NewAccountKey()
		if err != nil {
			return certissue.Account{}, err
		}
		sealed, err := sealer.Seal(acmeSealID, string(key))
		if err != nil {
			return certissue.Account{}, err
		}
		perr := st.Propose(ctx, fsm.CmdACMEAccountInit, fsm.ACMEAccountInit{Directory: directory, Email: email, SealedKey: sealed})
		if perr != nil && !errors.Is(perr, fsm.ErrConflict) {
			return certissue.Account{}, fmt.Errorf("acme account: %w", perr)
		}
		rec, err = st.ACMEAccount()
		if err != nil {
			return certissue.Account{}, err
		}
	} else if err != nil {
		return certissue.Account{}, err
	}
	if rec.Directory != directory {
		return certissue.Account{}, fmt.Errorf("acme account: the cluster's account is at %s, not the configured %s", rec.Directory, directory)
	}
	key, err := sealer.Open(acmeSealID, rec.SealedKey)
	if err != nil {
		return certissue.Account{}, fmt.Errorf("acme account key cannot be unsealed (is the KEK file the same on every coordinator?): %w", err)
	}
	return certissue.Account{Email: rec.Email, KeyPEM: []byte(key), URI: rec.URI}, nil
}

// AccountRegistered records the URI the server gave the cluster's account.
func AccountRegistered(ctx context.Context, st AccountState, uri string) error {
	rec, err := st.ACMEAccount()
	if err != nil {
		return err
	}
	if rec.URI == uri {
		return nil
	}
	return st.Propose(ctx, fsm.CmdACMEAccountRegistered, fsm.ACMEAccountRegistered{SealedKey: rec.SealedKey, URI: uri})
}
