-- The underlying error of an event (pingora's text for an upstream
-- failure), kept beside the message written for a person.
ALTER TABLE error_events ADD COLUMN detail TEXT;
