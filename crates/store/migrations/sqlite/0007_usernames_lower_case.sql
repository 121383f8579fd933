-- Usernames are now compared in lower case (the API normalizes what it is given). Existing names
-- become lower case, except where that would merge two accounts: those are left for an admin.
UPDATE users SET username = lower(username)
WHERE username <> lower(username)
  AND NOT EXISTS (SELECT 1 FROM users other
                  WHERE other.id <> users.id AND lower(other.username) = lower(users.username));
