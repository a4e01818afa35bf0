-- Effects the run's last events asked for and that are not performed yet
-- (JSON array), stored with the run so a crash between deciding and doing
-- cannot lose a step.
ALTER TABLE run ADD COLUMN effects TEXT;
