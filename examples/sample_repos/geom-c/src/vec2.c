/*
 * Copyright (c) 2023 geom-c contributors. All rights reserved.
 * Use of this source code is governed by a BSD-style license.
 */

#include <math.h>
#include <stdio.h>

typedef struct {
    double x;
    double y;
} vec2;

static vec2 vec2_add(vec2 a, vec2 b) {
    vec2 r = {a.x + b.x, a.y + b.y};
    return r;
}

static double vec2_dot(vec2 a, vec2 b) {
    return a.x * b.x + a.y * b.y;
}

static double vec2_length(vec2 v) {
    return sqrt(vec2_dot(v, v));
}

static vec2 vec2_scale(vec2 v, double k) {
    vec2 r = {v.x * k, v.y * k};
    return r;
}

int main(void) {
    vec2 a = {3.0, 4.0};
    vec2 b = {1.0, -2.0};
    vec2 c = vec2_add(a, vec2_scale(b, 2.0));
    double len = vec2_length(a);
    if (len != 5.0) {
        fprintf(stderr, "unexpected length %f\n", len);
        return 1;
    }
    printf("c = (%.1f, %.1f), |a| = %.1f\n", c.x, c.y, len);
    return 0;
}
