-- Reserved: the number is taken by a change merged separately. It changes
-- nothing.
SELECT 1;
