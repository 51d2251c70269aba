package main

import (
	"encoding/binary"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
)

// FerretDB v1 applies update, findAndModify and delete as "query the matching
// documents, then write them back by _id" without isolation between the two steps
// (internal/handler/msg_update.go, backends/sqlite UpdateAll), so two concurrent
// conditional updates of one document can both succeed and one write is lost.
// Real MongoDB applies each single-document update atomically, and Taskmill relies
// on that. This proxy restores it for local runs: it sits in front of FerretDB and
// lets one write command at a time through, until FerretDB has answered it.

const (
	opMsg       = 2013
	moreToCome  = 1 << 1
	headerBytes = 16
	maxMessage  = 48 * 1024 * 1024
)

var writeCommands = map[string]bool{
	"insert": true, "update": true, "delete": true, "findAndModify": true, "findandmodify": true,
}

type serializer struct {
	backend string // unix socket of FerretDB
	writes  sync.Mutex
	logger  *slog.Logger
}

func (s *serializer) serve(l net.Listener) error {
	for {
		client, err := l.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go s.handle(client)
	}
}

// connState tracks the one write a connection may have in flight while it holds the lock.
type connState struct {
	mu        sync.Mutex
	held      bool
	requestID uint32
}

func (c *connState) release(s *serializer, responseTo uint32, force bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.held && (force || c.requestID == responseTo) {
		c.held = false
		s.writes.Unlock()
	}
}

func (s *serializer) handle(client net.Conn) {
	defer client.Close()
	backend, err := net.Dial("unix", s.backend)
	if err != nil {
		s.logger.Error("cannot reach FerretDB", "error", err)
		return
	}
	defer backend.Close()

	state := &connState{}
	defer state.release(s, 0, true)

	done := make(chan struct{}, 2)
	go func() { // backend -> client: a reply to the pending write releases the lock
		defer func() { done <- struct{}{} }()
		for {
			msg, err := readMessage(backend)
			if err != nil {
				return
			}
			responseTo := binary.LittleEndian.Uint32(msg[8:12])
			if _, err := client.Write(msg); err != nil {
				return
			}
			state.release(s, responseTo, false)
		}
	}()
	go func() { // client -> backend: a write command waits for the lock
		defer func() { done <- struct{}{} }()
		for {
			msg, err := readMessage(client)
			if err != nil {
				return
			}
			name, flags := commandOf(msg)
			if writeCommands[name] && flags&moreToCome == 0 {
				s.writes.Lock()
				state.mu.Lock()
				state.held, state.requestID = true, binary.LittleEndian.Uint32(msg[4:8])
				state.mu.Unlock()
			}
			if _, err := backend.Write(msg); err != nil {
				return
			}
		}
	}()
	<-done
	client.Close()
	backend.Close()
	<-done
}

func readMessage(r io.Reader) ([]byte, error) {
	header := make([]byte, headerBytes)
	if _, err := io.ReadFull(r, header); err != nil {
		return nil, err
	}
	length := binary.LittleEndian.Uint32(header[0:4])
	if length < headerBytes || length > maxMessage {
		return nil, errors.New("bad message length")
	}
	msg := make([]byte, length)
	copy(msg, header)
	if _, err := io.ReadFull(r, msg[headerBytes:]); err != nil {
		return nil, err
	}
	return msg, nil
}

// commandOf returns the command name (the first key of the body section) and the
// flag bits of an OP_MSG; other opcodes return "".
func commandOf(msg []byte) (string, uint32) {
	if binary.LittleEndian.Uint32(msg[12:16]) != opMsg || len(msg) < headerBytes+4+1+4+2 {
		return "", 0
	}
	flags := binary.LittleEndian.Uint32(msg[16:20])
	if msg[20] != 0 { // the body section comes first
		return "", flags
	}
	// body: int32 length, then elements: type byte, cstring name, value
	name := msg[headerBytes+4+1+4+1:]
	for i, b := range name {
		if b == 0 {
			return string(name[:i]), flags
		}
	}
	return "", flags
}
