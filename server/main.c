/* flamegate entry point (filled in by the lifecycle work). */
#include <stdio.h>

int main(void)
{
    puts("flamegate " FG_VERSION);
    return 0;
}
