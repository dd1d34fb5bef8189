package ivr

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"ivrd/media"
)

// maxTypeAhead bounds the keys kept for later; a caller leaning on a key
// cannot grow a call's memory.
const maxTypeAhead = 32

// keep stores a key press as type-ahead for the next menu or collect.
func (s *session) keep(d media.Digit) {
	if !strings.ContainsRune(dtmfKeys, rune(d.Key)) || d.Key == 0 {
		s.log.Warn("ignoring unknown DTMF key", "key", d.Key, "source", d.Source.String())
		return
	}
	if len(s.ahead) >= maxTypeAhead {
		s.log.Debug("type-ahead full; dropping key", "key", string(d.Key))
		return
	}
	s.ahead = append(s.ahead, d.Key)
}

// play plays prompts while reading the caller's keys. Keys are kept as
// type-ahead either way; with bargeIn the first key stops the prompts, and
// prompts are not started at all when the caller has already typed ahead.
func (s *session) play(ctx context.Context, prompts []string, bargeIn bool) error {
	if len(prompts) == 0 || (bargeIn && len(s.ahead) > 0) {
		return nil
	}
	pb := StartPlay(ctx, s.ch, prompts...)
	defer pb.Stop() // after the result: does nothing
	barged := false
	for {
		select {
		case err := <-pb.Done():
			switch {
			case ctx.Err() != nil:
				return ctx.Err()
			case barged && errors.Is(err, context.Canceled):
				return nil
			case err != nil:
				return fmt.Errorf("play %s: %w", strings.Join(prompts, ","), err)
			}
			return nil
		case d, ok := <-s.digits:
			if !ok {
				s.digits = nil // media ended; the call's context ends the flow
				continue
			}
			s.keep(d)
			if bargeIn && !barged && len(s.ahead) > 0 {
				barged = true
				s.log.Debug("barge-in: prompt stopped by a key", "key", string(d.Key), "prompts", strings.Join(prompts, ","))
				pb.Stop()
			}
		}
	}
}

// nextKey returns the next key: type-ahead first, else one pressed within
// wait. ok is false when wait passed without a key.
func (s *session) nextKey(ctx context.Context, wait time.Duration) (key byte, ok bool, err error) {
	if len(s.ahead) > 0 {
		key, s.ahead = s.ahead[0], s.ahead[1:]
		return key, true, nil
	}
	timer := s.r.after(wait)
	for {
		select {
		case <-ctx.Done():
			return 0, false, ctx.Err()
		case <-timer:
			return 0, false, nil
		case d, open := <-s.digits:
			if !open {
				s.digits = nil
				continue
			}
			s.keep(d)
			if len(s.ahead) > 0 {
				key, s.ahead = s.ahead[0], s.ahead[1:]
				return key, true, nil
			}
		}
	}
}

// choose records an accepted input.
func (s *session) choose(n *node, input string) {
	s.call.Choices = append(s.call.Choices, Choice{Node: n.name, Input: input, At: s.r.now()})
	s.r.metrics.input(n.typ, inputValid)
}

// menu plays the menu prompt and waits for a key. A valid key leads to its
// option; an invalid key plays invalid_prompt and the menu again; silence
// plays timeout_prompt (if any) and the menu again. After `retries` invalid
// keys the call goes to on_invalid, after `retries` timeouts to on_timeout;
// the two are counted apart.
func (s *session) menu(ctx context.Context, n *node) (step, error) {
	invalid, timeouts := 0, 0
	prompts := n.prompts.names
	for {
		if err := s.play(ctx, prompts, n.bargeIn); err != nil {
			return step{}, err
		}
		key, ok, err := s.nextKey(ctx, n.timeout)
		if err != nil {
			return step{}, err
		}
		if !ok {
			timeouts++
			s.r.metrics.input(n.typ, inputTimeout)
			s.log.Info("menu timeout", "node", n.name, "timeouts", timeouts, "retries", n.retries)
			if timeouts >= n.retries {
				return step{next: n.onTimeout}, nil
			}
			prompts = concat(n.timeoutPrompts.names, n.prompts.names)
			continue
		}
		if target, found := n.optionKeys[key]; found {
			s.choose(n, string(key))
			s.log.Info("menu choice", "node", n.name, "key", string(key), "next", target)
			return step{next: target}, nil
		}
		invalid++
		s.r.metrics.input(n.typ, inputInvalid)
		s.log.Info("menu invalid key", "node", n.name, "key", string(key), "invalid", invalid, "retries", n.retries)
		if invalid >= n.retries {
			return step{next: n.onInvalid}, nil
		}
		prompts = concat(n.invalidPrompts.names, n.prompts.names)
	}
}

// collect gathers up to max_digits keys: timeout for the first, then
// inter_digit_timeout between keys; the terminator or max_digits ends the
// entry early. An entry of at least min_digits goes into the variable and
// on to next. Nothing at all counts as a timeout, too few digits as
// invalid; after `retries` of either the call goes to on_timeout or
// on_invalid (on_timeout when on_invalid is not set).
func (s *session) collect(ctx context.Context, n *node) (step, error) {
	invalid, timeouts := 0, 0
	prompts := n.prompts.names
	for {
		if err := s.play(ctx, prompts, n.bargeIn); err != nil {
			return step{}, err
		}
		var entry strings.Builder
		terminated := false
		wait := n.timeout
		for entry.Len() < n.maxDigits {
			key, ok, err := s.nextKey(ctx, wait)
			if err != nil {
				return step{}, err
			}
			if !ok {
				break
			}
			if n.terminator != 0 && key == n.terminator {
				terminated = true
				break
			}
			entry.WriteByte(key)
			wait = n.interDigit
		}
		value := entry.String()
		switch {
		case value == "" && !terminated && n.minDigits > 0:
			timeouts++
			s.r.metrics.input(n.typ, inputTimeout)
			s.log.Info("collect timeout", "node", n.name, "timeouts", timeouts, "retries", n.retries)
			if timeouts >= n.retries {
				return step{next: n.onTimeout}, nil
			}
			prompts = concat(n.timeoutPrompts.names, n.prompts.names)
		case len(value) < n.minDigits:
			invalid++
			s.r.metrics.input(n.typ, inputInvalid)
			s.log.Info("collect too short", "node", n.name, "digits", len(value), "min_digits", n.minDigits, "invalid", invalid, "retries", n.retries)
			if invalid >= n.retries {
				if n.onInvalid != "" {
					return step{next: n.onInvalid}, nil
				}
				return step{next: n.onTimeout}, nil
			}
			prompts = concat(n.invalidPrompts.names, n.prompts.names)
		default:
			s.call.Vars[n.into] = value
			s.choose(n, value)
			s.log.Info("collect input", "node", n.name, "into", n.into, "digits", len(value), "terminated", terminated)
			return step{next: n.next}, nil
		}
	}
}

func concat(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	return append(append(out, a...), b...)
}
