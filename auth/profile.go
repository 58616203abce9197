package auth

import (
	"context"
	"strings"
	"unicode"
	"unicode/utf8"
)

// EventProfileChanged records a change to how an account presents itself
// (its display name). The new name is not in the entry: the log says who
// changed whose profile, the account holds the name.
const EventProfileChanged = "user.profile.changed"

// MaxDisplayName bounds a display name, in characters.
const MaxDisplayName = 80

// CleanDisplayName validates a display name: trimmed, at most
// MaxDisplayName characters, no control or invisible formatting
// characters. Empty is allowed: the username shows instead.
func CleanDisplayName(name string) (string, error) {
	name = strings.TrimSpace(name)
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > MaxDisplayName {
		return "", policyError("policy.display.name", "Enter a name of at most 80 characters, such as Dr. Ana Ruiz.", "max", MaxDisplayName)
	}
	for _, r := range name {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return "", policyError("policy.display.name", "Enter a name of at most 80 characters, such as Dr. Ana Ruiz.", "max", MaxDisplayName)
		}
	}
	return name, nil
}

// SetDisplayName changes the name an account shows to patients. The
// account's owner and administrators may; the change is audited.
func (s *Service) SetDisplayName(ctx context.Context, actor Identity, userID, name string, c Client) error {
	if !actor.Full() || actor.User.ID != userID && !actor.IsAdmin() {
		return ErrForbidden
	}
	clean, err := CleanDisplayName(name)
	if err != nil {
		return err
	}
	if err := s.store.SetDisplayName(ctx, userID, clean); err != nil {
		return err
	}
	return s.record(ctx, Event{Type: EventProfileChanged, Success: true, Requester: actor.User.ID, Message: "display name changed", Client: c,
		Fields: map[string]string{"user": userID, "field": "display_name"}})
}
