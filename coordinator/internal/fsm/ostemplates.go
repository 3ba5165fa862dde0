package fsm

import (
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hostplane/hostplane/coordinator/internal/store"
	"github.com/hostplane/hostplane/pkg/api"
	"github.com/hostplane/hostplane/pkg/validate"
)

// Operator template labels (`hostplanectl template label|unlabel`): what GET
// /v1/os-templates shows of a template the nodes hold.

// OSTemplateLabelSet labels (or relabels) the template Name.
type OSTemplateLabelSet struct {
	Name  string                     `json:"name"`
	Label api.OSTemplateLabelRequest `json:"label"`
	// IfUpdatedAt: set only onto the label as its sender read it, last
	// changed at this time (zero: the template had no label), else a
	// *ChangedError with nothing changed (levelLabelPrecondition).
	IfUpdatedAt *time.Time `json:"if_updated_at,omitempty"`
}

// levelLabelPrecondition is the semantics level (level.go) from which the
// IfUpdatedAt of OSTemplateLabelSet and OSTemplateUnlabel is checked in
// apply; below it every replica ignores it alike (the admin API checks it
// before proposing at any level).
const levelLabelPrecondition = 2

// OSTemplateUnlabel removes a template's label (it falls back to its name);
// the result is the label removed.
type OSTemplateUnlabel struct {
	Name string `json:"name"`
	// IfUpdatedAt: as OSTemplateLabelSet's.
	IfUpdatedAt *time.Time `json:"if_updated_at,omitempty"`
}

// labelUnchanged checks a label command's IfUpdatedAt against the label of
// template name now (from levelLabelPrecondition).
func (c *applyCtx) labelUnchanged(name string, want *time.Time) error {
	if want == nil || c.level() < levelLabelPrecondition {
		return nil
	}
	cur, err := c.r.OSTemplateLabel(name)
	if err != nil && err != store.ErrNotFound {
		return err
	}
	return UnchangedSince("the label of template "+name, cur.UpdatedAt, want)
}

// Longest family, version and display name of a template label.
const (
	MaxTemplateFamily      = 32
	MaxTemplateVersion     = 32
	MaxTemplateDisplayName = 64
)

// CheckOSTemplateLabel validates a template label: the field at fault and
// why, or "" when it is fine. The HTTP layer answers 400 naming the field;
// the FSM refuses the same label (ErrInvalid).
func CheckOSTemplateLabel(name string, l api.OSTemplateLabelRequest) (field, reason string) {
	if validate.TemplateName(name) != nil {
		return "name", fmt.Sprintf("must be 1-%d characters of a-z, 0-9, '.', '_' and '-', starting with a letter or digit", validate.MaxTemplateName)
	}
	if l.Family == "" && l.Version == "" && l.DisplayName == "" {
		return "family", "give at least one of family, version and display_name"
	}
	if r := labelWord(l.Family, MaxTemplateFamily); r != "" {
		return "family", r
	}
	if r := labelWord(l.Version, MaxTemplateVersion); r != "" {
		return "version", r
	}
	switch n := utf8.RuneCountInString(l.DisplayName); {
	case !utf8.ValidString(l.DisplayName):
		return "display_name", "is not valid UTF-8"
	case n > MaxTemplateDisplayName:
		return "display_name", fmt.Sprintf("must be at most %d characters", MaxTemplateDisplayName)
	case strings.TrimSpace(l.DisplayName) != l.DisplayName:
		return "display_name", "must not start or end with a space"
	case strings.IndexFunc(l.DisplayName, unicode.IsControl) >= 0:
		return "display_name", "contains a control character"
	}
	return "", ""
}

// labelWord checks a family or version: empty (derived from the name), or up
// to max letters, digits, spaces, '-', '_' and '.', not starting or ending
// with a space (the rule of an order's os_family).
func labelWord(s string, max int) string {
	if s == "" {
		return ""
	}
	if !utf8.ValidString(s) {
		return "is not valid UTF-8"
	}
	if utf8.RuneCountInString(s) > max {
		return fmt.Sprintf("must be at most %d characters", max)
	}
	for _, r := range s {
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && !strings.ContainsRune(" -_.", r) {
			return "may hold only letters, digits, spaces, '-', '_' and '.'"
		}
	}
	if strings.TrimSpace(s) != s {
		return "must not start or end with a space"
	}
	return ""
}

func applyOSTemplateLabel(c *applyCtx, p OSTemplateLabelSet) (any, error) {
	if field, reason := CheckOSTemplateLabel(p.Name, p.Label); field != "" {
		return nil, fmt.Errorf("%w: %s %s", ErrInvalid, field, reason)
	}
	if err := c.labelUnchanged(p.Name, p.IfUpdatedAt); err != nil {
		return nil, err
	}
	out := api.OSTemplateLabel{Name: p.Name, OSTemplateLabelRequest: p.Label, UpdatedAt: c.at}
	return out, store.PutJSON(c.tx, store.BucketOSTemplates, []byte(p.Name), out)
}

func applyOSTemplateUnlabel(c *applyCtx, p OSTemplateUnlabel) (any, error) {
	if err := c.labelUnchanged(p.Name, p.IfUpdatedAt); err != nil {
		return nil, err
	}
	old, err := c.r.OSTemplateLabel(p.Name)
	if err == store.ErrNotFound {
		return nil, fmt.Errorf("template %s has no label: %w", p.Name, ErrNotFound)
	} else if err != nil {
		return nil, err
	}
	return old, c.tx.Bucket(store.BucketOSTemplates).Delete([]byte(p.Name))
}

// TemplateView is what GET /v1/os-templates shows of template name: its
// label where an operator gave one, else the name split at its first hyphen.
func TemplateView(name string, l api.OSTemplateLabel) api.OSTemplate {
	family, version, _ := strings.Cut(name, "-")
	out := api.OSTemplate{Name: name, Family: family, Version: version, DisplayName: l.DisplayName}
	if l.Family != "" {
		out.Family = l.Family
	}
	if l.Version != "" {
		out.Version = l.Version
	}
	return out
}
