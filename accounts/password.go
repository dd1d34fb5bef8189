package accounts

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/bcrypt"
)

// DefaultCost is the bcrypt cost of new hashes: 2^10 rounds, about 70 ms
// on one core today. Lower costs exist for tests only.
const DefaultCost = bcrypt.DefaultCost

// Password length limits for new passwords. bcrypt reads at most 72 bytes;
// longer passwords are refused rather than silently cut.
const (
	MinPasswordLen = 8
	MaxPasswordLen = 72
)

// HashPassword returns the bcrypt hash of password at cost (0: DefaultCost).
func HashPassword(password string, cost int) (string, error) {
	if cost == 0 {
		cost = DefaultCost
	}
	if len(password) > MaxPasswordLen {
		return "", fmt.Errorf("password longer than %d bytes", MaxPasswordLen)
	}
	h, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// CheckHash reports whether hash is a bcrypt hash ivrd can verify.
func CheckHash(hash string) error {
	if hash == "" {
		return errors.New("is required (a bcrypt hash: `ivrd user hash` makes one)")
	}
	if _, err := bcrypt.Cost([]byte(hash)); err != nil {
		return fmt.Errorf("is not a bcrypt hash ($2a$/$2b$/$2y$…): %v", err)
	}
	return nil
}

// PasswordMatches reports whether password is the one hashed in hash, in
// time that does not depend on where they differ.
func PasswordMatches(hash, password string) bool {
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

// CheckNewPassword is the policy for passwords set with `ivrd user`: at
// least MinPasswordLen bytes, at most MaxPasswordLen, and not the user name.
func CheckNewPassword(name, password string) error {
	switch {
	case len(password) < MinPasswordLen:
		return fmt.Errorf("password shorter than %d characters", MinPasswordLen)
	case len(password) > MaxPasswordLen:
		return fmt.Errorf("password longer than %d bytes (bcrypt reads no further)", MaxPasswordLen)
	case password == name:
		return errors.New("password is the user name")
	}
	return nil
}
